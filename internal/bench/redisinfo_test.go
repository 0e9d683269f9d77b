package bench

import "testing"

func TestParseInfoCPU(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.500125\r\nused_cpu_sys_children:9.000000\r\nused_cpu_user_children:9.000000\r\n"
	ms, err := parseInfoCPU([]byte(info))
	if err != nil || ms < 1750.12 || ms > 1750.13 {
		t.Fatalf("got %v, %v; want 1750.125 ms", ms, err)
	}
	if _, err := parseInfoCPU([]byte("# CPU\r\nused_cpu_sys:1\r\n")); err == nil {
		t.Fatal("took an INFO without used_cpu_user")
	}
	if _, err := parseInfoCPU([]byte("used_cpu_sys:x\r\nused_cpu_user:1\r\n")); err == nil {
		t.Fatal("took a bad number")
	}
}
