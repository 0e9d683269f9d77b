package bench

import (
	"os"
	"testing"
)

func TestParseKernelMemory(t *testing.T) {
	slab := []byte(`slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
TCP                  104    130   2368   13    8 : tunables    0    0    0 : slabdata      8      8      0
filp                 803    924    192   21    1 : tunables    0    0    0 : slabdata     44     44      0
kmalloc-64          1000   1000     64   64    1 : tunables    0    0    0 : slabdata     16     16      0
bad line
`)
	if got, want := parseSlabinfo(slab, socketSlabs), int64(130*2368+924*192); got != want {
		t.Errorf("slabinfo: %d, want %d", got, want)
	}
	stat := []byte("sockets: used 30\nTCP: inuse 11 orphan 0 tw 9 alloc 14 mem 320\nUDP: inuse 0 mem 7\n")
	if got, want := parseSockstatTCPMem(stat), int64(320*os.Getpagesize()); got != want {
		t.Errorf("sockstat: %d, want %d", got, want)
	}
	if got := parseSockstatTCPMem([]byte("TCP: inuse 1 mem x\n")); got != 0 {
		t.Errorf("a bad mem field gives %d, want 0", got)
	}
}
