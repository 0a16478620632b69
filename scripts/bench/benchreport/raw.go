package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// rawFile is what a run saves beside its report (bench-raw.txt): the
// machine and every step's output, so that -from can rebuild the report.
type rawFile struct {
	CPU        string    `json:"cpu"`
	Cores      int       `json:"cores"`
	MemGiB     float64   `json:"mem_gib"`
	Go         string    `json:"go"`
	OSArch     string    `json:"os_arch"`
	Start      time.Time `json:"start"`
	WallS      float64   `json:"wall_s"`
	LoadBefore string    `json:"load_before"`
	LoadAfter  string    `json:"load_after"`
	Quick      bool      `json:"quick"`
	DSPyPython string    `json:"dspy_python"`
	Steps      []rawStep `json:"steps"`
}

type rawStep struct {
	ID        string  `json:"id"`
	Pkg       string  `json:"pkg"`
	Bench     string  `json:"bench"`
	Benchtime string  `json:"benchtime"`
	Count     int     `json:"count"`
	DSPy      bool    `json:"dspy"`
	QuickEnv  bool    `json:"quick_env"`
	WallS     float64 `json:"wall_s"`
	Error     string  `json:"error,omitempty"`
	Output    string  `json:"output"`
}

func writeRaw(path string, env runEnv, runs []*stepRun) error {
	f := rawFile{CPU: env.cpu, Cores: env.cores, MemGiB: env.memGiB, Go: env.goVersion, OSArch: env.osArch, Start: env.start,
		WallS: env.wall.Seconds(), LoadBefore: env.loadBefore, LoadAfter: env.loadAfter, Quick: env.quick, DSPyPython: env.dspyPython}
	for _, r := range runs {
		s := rawStep{ID: r.id, Pkg: r.pkg, Bench: r.bench, Benchtime: r.benchtime, Count: r.count, DSPy: r.dspy, QuickEnv: r.quickEnv,
			WallS: r.wall.Seconds(), Output: r.out}
		if r.err != nil {
			s.Error = r.err.Error()
		}
		f.Steps = append(f.Steps, s)
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func readRaw(path string) (runEnv, []*stepRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return runEnv{}, nil, err
	}
	var f rawFile
	if err := json.Unmarshal(b, &f); err != nil {
		return runEnv{}, nil, fmt.Errorf("%s: not a benchreport raw file: %w", path, err)
	}
	if len(f.Steps) == 0 {
		return runEnv{}, nil, fmt.Errorf("%s: no steps", path)
	}
	env := runEnv{cpu: f.CPU, cores: f.Cores, memGiB: f.MemGiB, goVersion: f.Go, osArch: f.OSArch, start: f.Start,
		wall: time.Duration(f.WallS * float64(time.Second)), loadBefore: f.LoadBefore, loadAfter: f.LoadAfter, quick: f.Quick, dspyPython: f.DSPyPython}
	var runs []*stepRun
	for _, s := range f.Steps {
		r := &stepRun{step: step{id: s.ID, pkg: s.Pkg, bench: s.Bench, benchtime: s.Benchtime, count: s.Count, dspy: s.DSPy, quickEnv: s.QuickEnv},
			out: s.Output, wall: time.Duration(s.WallS * float64(time.Second))}
		if s.Error != "" {
			r.err = errors.New(s.Error)
		}
		r.parse()
		runs = append(runs, r)
	}
	return env, runs, nil
}
