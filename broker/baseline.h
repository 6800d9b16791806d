/* The seccomp baseline that ioreq-launch puts on every sandboxed device,
 * whatever its program does: the last step before execve, after
 * no_new_privs.
 *
 * Every listed call fails with EPERM (a refusal a program copes with, not a
 * kill it could be fooled into by a library probing a feature); everything
 * else is allowed. A device using libioreq-device narrows this down to its
 * own allow-list once connected: filters stack, and the stricter answer
 * wins. The list is what reaches the kernel's least-exercised or most
 * powerful code, or out of the sandbox:
 *
 *  - io_uring (a second system call interface that seccomp cannot see into);
 *  - new namespaces: unshare, setns, clone with a CLONE_NEW* flag, and
 *    clone3 (ENOSYS, so that glibc falls back to clone, whose flags seccomp
 *    can check);
 *  - mounts: mount, umount2, pivot_root, open_tree, move_mount, fsopen,
 *    fsconfig, fsmount, fspick, mount_setattr, chroot;
 *  - bpf, perf_event_open, userfaultfd;
 *  - keyrings: keyctl, add_key, request_key;
 *  - other processes: ptrace, process_vm_readv/writev, pidfd_getfd;
 *  - the kernel itself: init/finit/delete_module, kexec_load/kexec_file_load,
 *    reboot, swapon/swapoff, acct, quotactl, quotactl_fd;
 *  - ioctl TIOCSTI (typing into a terminal) and TIOCLINUX;
 *  - personality, except to read it.
 * Calls of another architecture (i386's int 0x80, x32) kill the process. */
#ifndef IOREQ_BASELINE_H
#define IOREQ_BASELINE_H

/* Installs the filter on the calling thread (and what it starts or
 * executes). 0 or a negative errno. */
int baseline_install(void);

#endif
