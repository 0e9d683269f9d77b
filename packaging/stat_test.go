//go:build unix

package packaging

import (
	"os"
	"syscall"
)

func statGID(st os.FileInfo) int { return int(st.Sys().(*syscall.Stat_t).Gid) }
