/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/**
 * DOC: bus1 kernel UAPI (2016), as served by bus1d
 *
 * This header restates the interface of the 2016 bus1 kernel module: every
 * name, value and struct layout that programs written against
 * `<linux/bus1.h>` use. It is self-contained: it brings its own fixed-width
 * integer types and its own `_IOWR()` encoding, so it can be included
 * without any kernel header. It defines no `bus1_ioctl*` name; programs
 * define those themselves.
 *
 * With bus1d there is no `/dev/bus1`: a program calls bus1_uapi_open() in
 * place of open(2), bus1_uapi_ioctl() in place of ioctl(2) and
 * bus1_uapi_close() in place of close(2), and maps the pool from
 * bus1_uapi_pool_fd(). The commands keep the kernel's semantics.
 */

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The kernel's fixed-width types, declared exactly as <linux/types.h> does, so
 * that including both in either order is a valid (identical) redefinition.
 */
typedef unsigned char __u8;
typedef unsigned int __u32;
typedef signed int __s32;
typedef unsigned long long __u64;

#define BUS1_FD_MAX                             (256)

#define BUS1_IOCTL_MAGIC                        0x96
#define BUS1_HANDLE_INVALID                     ((__u64)-1)
#define BUS1_OFFSET_INVALID                     ((__u64)-1)

/* handle IDs */
#define BUS1_HANDLE_FLAG_MANAGED                (((__u64)1) << 0)
#define BUS1_HANDLE_FLAG_REMOTE                 (((__u64)1) << 1)

/* peer flags and PEER_RESET flags */
#define BUS1_PEER_FLAG_WANT_SECCTX              (((__u64)1) << 0)
#define BUS1_PEER_RESET_FLAG_FLUSH              (((__u64)1) << 0)
#define BUS1_PEER_RESET_FLAG_FLUSH_SEED         (((__u64)1) << 1)

/**
 * struct bus1_cmd_peer_reset - PEER_QUERY and PEER_RESET argument
 * @flags:              BUS1_PEER_RESET_FLAG_* (RESET), 0 (QUERY)
 * @peer_flags:         BUS1_PEER_FLAG_*, all ones to keep
 * @max_slices:         pool slice limit, all ones to keep
 * @max_handles:        handle limit (user references), all ones to keep
 * @max_inflight_bytes: pool byte limit, all ones to keep
 * @max_inflight_fds:   in-flight fd limit, all ones to keep
 */
struct bus1_cmd_peer_reset {
        __u64 flags;
        __u64 peer_flags;
        __u32 max_slices;
        __u32 max_handles;
        __u32 max_inflight_bytes;
        __u32 max_inflight_fds;
} __attribute__((__aligned__(8)));

/**
 * struct bus1_cmd_handle_transfer - HANDLE_TRANSFER argument
 * @flags:      must be 0
 * @src_handle: the caller's handle (a new ID creates a node)
 * @dst_fd:     descriptor of the destination peer, (u64)-1 for the caller
 * @dst_handle: out: the ID the destination peer holds
 */
struct bus1_cmd_handle_transfer {
        __u64 flags;
        __u64 src_handle;
        __u64 dst_fd;
        __u64 dst_handle;
} __attribute__((__aligned__(8)));

#define BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES (((__u64)1) << 0)

/**
 * struct bus1_cmd_nodes_destroy - NODES_DESTROY argument
 * @flags:      BUS1_NODES_DESTROY_FLAG_*
 * @ptr_nodes:  address of a u64 array of owner handle IDs
 * @n_nodes:    number of entries in that array
 */
struct bus1_cmd_nodes_destroy {
        __u64 flags;
        __u64 ptr_nodes;
        __u64 n_nodes;
} __attribute__((__aligned__(8)));

#define BUS1_SEND_FLAG_CONTINUE                 (((__u64)1) << 0)
#define BUS1_SEND_FLAG_SEED                     (((__u64)1) << 1)

/**
 * struct bus1_cmd_send - SEND argument
 * @flags:              BUS1_SEND_FLAG_*
 * @ptr_destinations:   address of a u64 array of destination handle IDs
 * @ptr_errors:         address of a u64 array for per-destination errors, or 0
 * @n_destinations:     number of destinations
 * @ptr_vecs:           address of a struct iovec array (the payload)
 * @n_vecs:             number of iovecs
 * @ptr_handles:        address of a u64 array of handle IDs to attach
 * @n_handles:          number of handles
 * @ptr_fds:            address of an int array of fds to attach
 * @n_fds:              number of fds
 */
struct bus1_cmd_send {
        __u64 flags;
        __u64 ptr_destinations;
        __u64 ptr_errors;
        __u64 n_destinations;
        __u64 ptr_vecs;
        __u64 n_vecs;
        __u64 ptr_handles;
        __u64 n_handles;
        __u64 ptr_fds;
        __u64 n_fds;
} __attribute__((__aligned__(8)));

#define BUS1_RECV_FLAG_PEEK                     (((__u64)1) << 0)
#define BUS1_RECV_FLAG_SEED                     (((__u64)1) << 1)
#define BUS1_RECV_FLAG_INSTALL_FDS              (((__u64)1) << 2)

enum {
        BUS1_MSG_NONE,
        BUS1_MSG_DATA,
        BUS1_MSG_NODE_DESTROY,
        BUS1_MSG_NODE_RELEASE,
};

#define BUS1_MSG_FLAG_HAS_SECCTX                (((__u64)1) << 0)
#define BUS1_MSG_FLAG_CONTINUE                  (((__u64)1) << 1)

/**
 * struct bus1_cmd_recv - RECV argument
 * @flags:      BUS1_RECV_FLAG_*
 * @max_offset: the part of the pool the caller has mapped
 * @msg:        out: the entry received
 */
struct bus1_cmd_recv {
        __u64 flags;
        __u64 max_offset;
        struct {
                __u64 type;
                __u64 flags;
                __u64 destination;
                __u32 uid;
                __u32 gid;
                __u32 pid;
                __u32 tid;
                __u64 offset;
                __u64 n_bytes;
                __u64 n_handles;
                __u64 n_fds;
                __u64 n_secctx;
        } __attribute__((__aligned__(8))) msg;
} __attribute__((__aligned__(8)));

/*
 * The kernel's ioctl number encoding (asm-generic), restated token for token,
 * so that a later <sys/ioctl.h> redefines these macros identically.
 */
#ifndef _IOWR
#ifndef _IOC_NRBITS
#define _IOC_NRBITS	8
#endif
#ifndef _IOC_TYPEBITS
#define _IOC_TYPEBITS	8
#endif
#ifndef _IOC_SIZEBITS
# define _IOC_SIZEBITS	14
#endif
#ifndef _IOC_NRSHIFT
#define _IOC_NRSHIFT	0
#endif
#ifndef _IOC_TYPESHIFT
#define _IOC_TYPESHIFT	(_IOC_NRSHIFT+_IOC_NRBITS)
#endif
#ifndef _IOC_SIZESHIFT
#define _IOC_SIZESHIFT	(_IOC_TYPESHIFT+_IOC_TYPEBITS)
#endif
#ifndef _IOC_DIRSHIFT
#define _IOC_DIRSHIFT	(_IOC_SIZESHIFT+_IOC_SIZEBITS)
#endif
#ifndef _IOC_WRITE
# define _IOC_WRITE	1U
#endif
#ifndef _IOC_READ
# define _IOC_READ	2U
#endif
#ifndef _IOC
#define _IOC(dir,type,nr,size) \
	(((dir)  << _IOC_DIRSHIFT) | \
	 ((type) << _IOC_TYPESHIFT) | \
	 ((nr)   << _IOC_NRSHIFT) | \
	 ((size) << _IOC_SIZESHIFT))
#endif
#ifndef _IOC_TYPECHECK
#define _IOC_TYPECHECK(t) (sizeof(t))
#endif
#define _IOWR(type,nr,size)	_IOC(_IOC_READ|_IOC_WRITE,(type),(nr),(_IOC_TYPECHECK(size)))
#endif

#define BUS1_CMD_PEER_DISCONNECT        _IOWR(BUS1_IOCTL_MAGIC, 0x00, __u64)
#define BUS1_CMD_PEER_QUERY             _IOWR(BUS1_IOCTL_MAGIC, 0x01, struct bus1_cmd_peer_reset)
#define BUS1_CMD_PEER_RESET             _IOWR(BUS1_IOCTL_MAGIC, 0x02, struct bus1_cmd_peer_reset)
#define BUS1_CMD_HANDLE_RELEASE         _IOWR(BUS1_IOCTL_MAGIC, 0x10, __u64)
#define BUS1_CMD_HANDLE_TRANSFER        _IOWR(BUS1_IOCTL_MAGIC, 0x11, struct bus1_cmd_handle_transfer)
#define BUS1_CMD_NODES_DESTROY          _IOWR(BUS1_IOCTL_MAGIC, 0x20, struct bus1_cmd_nodes_destroy)
#define BUS1_CMD_SLICE_RELEASE          _IOWR(BUS1_IOCTL_MAGIC, 0x30, __u64)
#define BUS1_CMD_SEND                   _IOWR(BUS1_IOCTL_MAGIC, 0x40, struct bus1_cmd_send)
#define BUS1_CMD_RECV                   _IOWR(BUS1_IOCTL_MAGIC, 0x50, struct bus1_cmd_recv)

/*
 * The calls that replace open(2), ioctl(2) and close(2) on /dev/bus1
 * (libbus1-client). Each returns a negative errno on failure;
 * bus1_uapi_ioctl() also stores it in errno, so wrappers written for
 * ioctl(2) work unchanged. A peer belongs to one process at a time: a
 * forked child's first call on an inherited peer takes it over, and the
 * parent's calls then fail with -EBADFD (bus1_uapi_open(3)).
 */
int bus1_uapi_open(const char *address);
int bus1_uapi_ioctl(int peer, unsigned long cmd, void *arg);
int bus1_uapi_pool_fd(int peer);
int bus1_uapi_close(int peer);

#ifdef __cplusplus
}
#endif
