/* Who a remote device is: the identity its TLS certificate proves, checked
 * inside the TLS handshake, before nng makes a connection of it.
 *
 * nng 1.5.2 tells a pipe only whether its peer's certificate chained to
 * the CA (NNG_OPT_TLS_VERIFIED): not its name, not its fingerprint. So the
 * broker registers a TLS engine of its own with nng (the public engine
 * interface, <nng/supplemental/tls/engine.h>, over mbed TLS like nng's
 * own), whose handshake fails unless the peer's certificate passes its
 * listener's tlsid: signed by the CA and carrying the expected name (its
 * subject's CN or a DNS subjectAltName), and/or with the pinned SHA-256
 * fingerprint; never expired or not yet valid. A refused peer never
 * becomes an nng pipe: not one of its bytes reaches the protocol. Why it
 * was refused goes to the refused() callback, on nng's thread.
 *
 * The engine replaces nng's for the whole process, once nng has started
 * (tlsid_new does it): the broker has no other use for TLS. */
#ifndef IOREQ_TLSID_H
#define IOREQ_TLSID_H

#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

struct tlsid_spec {
	const char *certificate, *key; /* ours (PEM files) */
	const char *ca;                /* NULL: no CA (fingerprint only) */
	const char *peer_name;         /* with ca */
	const char *fingerprint;       /* 64 lowercase hex digits, or NULL */
	/* Called with why a peer was refused ("its certificate has expired"). */
	void (*refused)(void *opaque, const char *why);
	void *opaque;
};

struct tlsid;

/* Reads the files of @spec and makes a server configuration that checks
 * peers so. 0, or a negative errno with *@ret_why saying what failed. */
int tlsid_new(const struct tlsid_spec *spec, struct tlsid **ret, const char **ret_why);

/* NULL is fine; returns NULL. Once no listener uses its configuration. */
struct tlsid *tlsid_free(struct tlsid *t);

/* For NNG_OPT_TLS_CONFIG on a tls+tcp:// listener. */
nng_tls_config *tlsid_config(const struct tlsid *t);

/* The subject of the last peer accepted ("" if none yet). */
void tlsid_subject(struct tlsid *t, char *buf, size_t len);

#endif
