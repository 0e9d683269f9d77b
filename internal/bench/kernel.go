package bench

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// socketSlabs are the kernel caches a TCP connection's objects come from:
// the socket itself, its inode and file, its dentry, and its epoll entry.
var socketSlabs = map[string]bool{
	"TCP": true, "sock_inode_cache": true, "filp": true, "dentry": true,
	"eventpoll_epi": true, "eventpoll_pwq": true,
}

// KernelMemory returns what the kernel holds for this machine's sockets:
// the socket caches of /proc/slabinfo (objects times object size) plus the
// TCP buffer pages of /proc/net/sockstat. It counts every process's
// sockets; a bench that reads it before and after opening connections
// over loopback sees both ends of each. An error: unreadable (slabinfo
// needs root).
func KernelMemory() (int64, error) {
	slab, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		return 0, err
	}
	stat, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0, err
	}
	return parseSlabinfo(slab, socketSlabs) + parseSockstatTCPMem(stat), nil
}

// parseSlabinfo sums num_objs * objsize over the named caches.
func parseSlabinfo(b []byte, names map[string]bool) int64 {
	var total int64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !names[f[0]] {
			continue
		}
		objs, err1 := strconv.ParseInt(f[2], 10, 64)
		size, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 == nil && err2 == nil && objs >= 0 && size >= 0 {
			total += objs * size
		}
	}
	return total
}

// parseSockstatTCPMem reads the "mem" pages of sockstat's TCP line, in bytes.
func parseSockstatTCPMem(b []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			if f[i] == "mem" {
				if pages, err := strconv.ParseInt(f[i+1], 10, 64); err == nil && pages >= 0 {
					return pages * int64(os.Getpagesize())
				}
			}
		}
	}
	return 0
}
