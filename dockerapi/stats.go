package dockerapi

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	runc "github.com/containerd/go-runc"

	"github.com/cais-platform/cais/engine"
)

type cpuUsage struct {
	TotalUsage        uint64   `json:"total_usage"`
	PercpuUsage       []uint64 `json:"percpu_usage,omitempty"`
	UsageInKernelmode uint64   `json:"usage_in_kernelmode"`
	UsageInUsermode   uint64   `json:"usage_in_usermode"`
}

type cpuStats struct {
	CPUUsage       cpuUsage          `json:"cpu_usage"`
	SystemUsage    uint64            `json:"system_cpu_usage,omitempty"`
	OnlineCPUs     uint32            `json:"online_cpus,omitempty"`
	ThrottlingData map[string]uint64 `json:"throttling_data"`
}

type memoryStats struct {
	Usage    uint64            `json:"usage,omitempty"`
	MaxUsage uint64            `json:"max_usage,omitempty"`
	Stats    map[string]uint64 `json:"stats,omitempty"`
	Failcnt  uint64            `json:"failcnt,omitempty"`
	Limit    uint64            `json:"limit,omitempty"`
}

// statsJSON is one sample of docker stats.
type statsJSON struct {
	Read        time.Time         `json:"read"`
	PreRead     time.Time         `json:"preread"`
	PidsStats   map[string]uint64 `json:"pids_stats"`
	BlkioStats  map[string]any    `json:"blkio_stats"`
	NumProcs    uint32            `json:"num_procs"`
	CPUStats    cpuStats          `json:"cpu_stats"`
	PreCPUStats cpuStats          `json:"precpu_stats"`
	MemoryStats memoryStats       `json:"memory_stats"`
	Name        string            `json:"name"`
	ID          string            `json:"id"`
}

// makeStats converts runc's statistics (nil for a stopped container) to
// Docker's.
func makeStats(c engine.Container, st *runc.Stats, now time.Time) statsJSON {
	out := statsJSON{
		Read: now, Name: "/" + c.Name, ID: c.ID,
		PidsStats:  map[string]uint64{},
		BlkioStats: map[string]any{"io_service_bytes_recursive": nil},
		CPUStats:   cpuStats{ThrottlingData: map[string]uint64{"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
	}
	out.PreCPUStats.ThrottlingData = out.CPUStats.ThrottlingData
	if st == nil {
		return out
	}
	out.PidsStats["current"] = st.Pids.Current
	if st.Pids.Limit > 0 {
		out.PidsStats["limit"] = st.Pids.Limit
	}
	out.CPUStats.CPUUsage = cpuUsage{TotalUsage: st.Cpu.Usage.Total, PercpuUsage: st.Cpu.Usage.Percpu, UsageInKernelmode: st.Cpu.Usage.Kernel, UsageInUsermode: st.Cpu.Usage.User}
	out.CPUStats.SystemUsage = systemCPUUsage()
	out.CPUStats.OnlineCPUs = uint32(runtime.NumCPU())
	out.CPUStats.ThrottlingData = map[string]uint64{"periods": st.Cpu.Throttling.Periods, "throttled_periods": st.Cpu.Throttling.ThrottledPeriods, "throttled_time": st.Cpu.Throttling.ThrottledTime}
	limit := st.Memory.Usage.Limit
	if total := hostMemory(); limit == 0 || limit > total {
		limit = total
	}
	out.MemoryStats = memoryStats{Usage: st.Memory.Usage.Usage, MaxUsage: st.Memory.Usage.Max, Failcnt: st.Memory.Usage.Failcnt, Limit: limit, Stats: st.Memory.Raw}
	return out
}

// systemCPUUsage is the host's CPU time in nanoseconds (/proc/stat).
func systemCPUUsage() uint64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && fields[0] == "cpu" {
			var ticks uint64
			for _, v := range fields[1:] {
				n, _ := strconv.ParseUint(v, 10, 64)
				ticks += n
			}
			return ticks * (1e9 / 100) // USER_HZ is 100
		}
	}
	return 0
}

func hostMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n * 1024
		}
	}
	return 0
}
