/* The broker's configuration: one YAML file, loaded strictly.
 *
 * Every error is reported as "FILE:LINE:COLUMN: message" (1-based) and nothing
 * is returned unless the whole file is valid: unknown or duplicate keys,
 * duplicate names, overlapping ranges within a VM, empty or wrapping ranges,
 * bad BDFs and bad sizes are all errors. The schema, with every key's range and
 * default, is the tables in config.c; cfg_print_reference() prints them. */
#ifndef IOREQ_CONFIG_H
#define IOREQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_MAX_VCPUS 16

enum cfg_backend {
	CFG_BACKEND_SIM,
	CFG_BACKEND_KVM,
	CFG_BACKEND_ACRN,
};

/* What a device's failure does to the requests it should serve. */
enum cfg_on_failure {
	CFG_ON_FAILURE_FALLBACK, /* complete them with the fallback while it restarts */
	CFG_ON_FAILURE_HOLD,     /* keep them (bounded by the deadline) for the restarted device */
	CFG_ON_FAILURE_STOP_VM,  /* stop the VM */
};

enum cfg_sandbox {
	CFG_SANDBOX_NONE,
	CFG_SANDBOX_STRICT,
};

/* How requests reach a device. */
enum cfg_transport {
	CFG_TRANSPORT_DEFAULT, /* not set: IOREQ_TRANSPORT in the broker's environment, else ring */
	CFG_TRANSPORT_RING,    /* its request ring (shared memory), nng where it has none */
	CFG_TRANSPORT_NNG,     /* its nng socket only */
};

/* Where a value was written, for messages about it later (1-based). */
struct cfg_mark {
	int line, col;
};

/* What of the guest's RAM a device is given, as an fd it maps itself. */
enum cfg_memory {
	CFG_MEMORY_NONE,
	CFG_MEMORY_GUEST,     /* read-write */
	CFG_MEMORY_READ_ONLY, /* an fd that cannot write it */
};

/* A file the broker opens for a device at each of its instance starts, with
 * its own rights, and passes as an fd: the device never sees the path. */
struct cfg_file {
	char *path;  /* absolute */
	bool write;  /* read-write, else read-only */
	bool direct; /* O_DIRECT */
	struct cfg_mark mark;
};

struct cfg_range {
	uint64_t start, end; /* inclusive */
	struct cfg_mark mark;
};

/* A device served from another host (`remote:`): the broker listens for
 * its runner (ioreq-remote) instead of starting a program, and knows it by
 * its certificate. */
struct cfg_remote {
	char *listen;        /* tls+tcp://ADDRESS:PORT, or tcp://ADDRESS:PORT with insecure; NULL: not remote */
	char *certificate;   /* the broker's own certificate and key (absolute paths) */
	char *key;
	char *ca;            /* the CA that signs the device's certificate... */
	char *peer_name;     /* ...and the name it must carry (CN or DNS subjectAltName) */
	char *fingerprint;   /* or: the SHA-256 of its certificate, 64 lowercase hex digits */
	bool insecure;       /* tcp:// allowed: no identity at all (tests only) */
	uint32_t timeout_ms; /* silence from the runner that drops the connection */
};

struct cfg_device {
	char *name;
	char *program;     /* absolute path, checked to be executable; NULL when remote */
	struct cfg_remote remote;
	char **args;       /* extra arguments, NULL-terminated */
	struct cfg_range *pio;
	size_t n_pio;
	struct cfg_range *mmio;
	size_t n_mmio;
	struct cfg_range *pci; /* BDFs (bus << 8 | dev << 3 | fn), start == end */
	size_t n_pci;
	uint32_t *irqs;    /* IRQ lines (GSIs) the device may drive */
	size_t n_irqs;
	bool msi;          /* may the device inject MSIs */
	uint32_t deadline_ms;
	enum cfg_transport transport;
	uint32_t poll_us;  /* how long it and the broker spin on its ring before sleeping */
	enum cfg_sandbox sandbox;
	enum cfg_on_failure on_failure;
	uint32_t restart_limit;     /* restarts allowed within restart_window_ms... */
	uint32_t restart_window_ms; /* ...before the device is marked failed */
	uint32_t max_inflight;      /* requests in flight at once; more get the fallback */
	uint32_t max_msg_rate;      /* messages per second it may send beyond replies */
	uint32_t max_claims;        /* BAR ranges an instance may hold at once */
	uint32_t max_violations;    /* soft protocol violations per minute before it is cut off */
	/* The instance's cgroup limits. */
	uint64_t memory_max;        /* bytes */
	uint32_t pids_max;          /* tasks */
	uint32_t cpu_max;           /* percent of one CPU */
	/* Where the device may claim ranges at run time (PCI BARs). */
	struct cfg_range *win_pio;
	size_t n_win_pio;
	struct cfg_range *win_mmio;
	size_t n_win_mmio;
	/* The data plane: what each instance is given as fds. */
	enum cfg_memory memory;
	struct cfg_file *files;
	size_t n_files;
	uint32_t doorbells;         /* eventfds it may bind to guest writes (ioeventfds) */
	uint32_t irqfds;            /* eventfds it may bind to its interrupts (irqfds) */
	char *vhost_user;           /* a vhost-user socket it serves (absolute path), or NULL */
	/* The file it was read from (struct cfg's path, not owned): errors at
	 * run time name FILE:LINE:COLUMN too. */
	const char *config_path;
	/* The device's stdout: the broker's own, a file (absolute path), or
	 * /dev/null when neither is set. Its stdin: the broker's or /dev/null. */
	bool output_stdout;
	char *output_file;
	bool input_stdin;
	struct cfg_mark mark;
};

struct cfg_vm {
	char *name;
	enum cfg_backend backend;
	unsigned vcpus;
	char **scripts;    /* sim: vcpus entries, absolute paths; NULL = idle vCPU */
	uint64_t memory;   /* guest RAM in bytes; sim: 0 without `memory` */
	char *image;       /* kvm: the guest's static ELF64 image, absolute path */
	uint32_t exit_port; /* kvm: a write here stops the VM with that status */
	bool completion_polling; /* acrn: the vCPU polls for completion */
	bool autostart;    /* start with the broker (default true) */
	struct cfg_device *devices;
	size_t n_devices;
	struct cfg_mark mark;
};

struct cfg {
	char *path;
	char *runtime_dir; /* NULL: chosen by the broker */
	char *control_socket; /* NULL: RUNTIME_DIR/control */
	char *control_group;  /* NULL: only root and the broker's own user */
	uint32_t deadline_ms;
	/* Each device instance runs as its own uid = gid from this range. */
	uint32_t device_id_first, device_id_count;
	char *cgroup; /* where device instances get their cgroups; NULL: chosen by the broker */
	struct cfg_vm *vms;
	size_t n_vms;
};

/* Loads @path. Bare program names are looked up in @bindir, then in $PATH;
 * script and program paths with a '/' are relative to the file's directory.
 * On error returns a negative errno and writes "FILE:LINE:COLUMN: message"
 * (or "FILE: message" when there is no position) into @err. */
int cfg_load(const char *path, const char *bindir, struct cfg **ret, char *err, size_t errlen);

/* Receives one error, "FILE:LINE:COLUMN: message". */
typedef void cfg_report_fn(void *opaque, const char *msg);

/* cfg_load for ioreq-brokerd --check: goes on past errors and passes the
 * first @max_reports of them to @report; *@ret_errors gets how many there
 * were in all (0: the configuration is in *@ret). */
int cfg_check(const char *path, const char *bindir, size_t max_reports, cfg_report_fn *report, void *opaque,
	      struct cfg **ret, size_t *ret_errors);

/* Frees a whole or half-built configuration; NULL is fine. Returns NULL. */
struct cfg *cfg_free(struct cfg *c);

const char *cfg_backend_name(enum cfg_backend b);

/* Whether the device takes its requests from a request ring: transport:
 * ring, and on this host (a remote device shares no memory with us). */
static inline bool cfg_device_has_ring(const struct cfg_device *dev)
{
	return dev->transport == CFG_TRANSPORT_RING && !dev->remote.listen;
}

/* Whether two VM entries configure the same VM. If not, names the first
 * difference ("vcpus", "device 'uart0'", ...) in @what. */
bool cfg_vm_equal(const struct cfg_vm *a, const struct cfg_vm *b, char *what, size_t len);

/* Writes the configuration reference (Markdown: every key, its values,
 * default and meaning), the text README.md carries. -EIO if writing failed. */
enum cfg_ref_format {
	CFG_REF_MARKDOWN, /* README.md's tables */
	CFG_REF_SCDOC,    /* ioreq-broker.yaml(5), through scdoc */
};

int cfg_print_reference(FILE *f, enum cfg_ref_format fmt);

#endif
