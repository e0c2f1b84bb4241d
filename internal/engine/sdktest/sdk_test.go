// Package sdktest runs Julep's official TypeScript SDK against the real
// astra binary: the proof that code written for Julep keeps working.
package sdktest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOfficialSDK builds astra, starts `astra engine` on loopback and runs
// sdk.mjs with node. It skips (saying why) only when node or the SDK
// (npm install in this directory; .ci/run does it) is missing.
func TestOfficialSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary and runs node")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the official SDK test needs Node 20 (.ci/run installs it)")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "@julep", "sdk", "package.json")); err != nil {
		t.Skip("@julep/sdk is not installed: run npm ci in internal/engine/sdktest (.ci/run does)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "astra")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/astra-app/astra/cmd/astra")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build astra: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const key = "sdk-test-key"
	srv := exec.CommandContext(ctx, bin, "engine", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
	srv.Env = append(os.Environ(), "ASTRA_ENGINE_KEY="+key, "ASTRA_LOG_LEVEL=warn")
	srv.Cancel = func() error { return srv.Process.Signal(os.Interrupt) }
	srv.WaitDelay = 10 * time.Second
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	srv.Stderr = &stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = srv.Wait()
		if t.Failed() {
			t.Logf("astra engine stderr:\n%s", stderr.String())
		}
	}()
	base := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "astra engine listening on "); ok {
			base = strings.TrimSpace(u)
			break
		}
	}
	if base == "" {
		t.Fatalf("astra engine did not say where it listens:\n%s", stderr.String())
	}
	go func() { // keep draining so the server never blocks on stdout
		for sc.Scan() {
		}
	}()
	run := exec.CommandContext(ctx, node, "sdk.mjs")
	run.Env = append(os.Environ(), "JULEP_BASE_URL="+base, "JULEP_API_KEY="+key)
	out, err := run.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the SDK script failed: %v", err)
	}
	if !strings.Contains(string(out), "ok 8 areas") {
		t.Fatalf("the SDK script did not cover every area")
	}
}
