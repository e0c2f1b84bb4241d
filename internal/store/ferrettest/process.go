package ferrettest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var build struct {
	once sync.Once
	bin  string
	err  error
	out  []byte
}

// StartProcess runs FerretDB in a process of its own (ferretserve, built
// once per test binary without -race) with its data in a fresh temporary
// directory, stops it when the test ends, and returns its MongoDB URI. Like
// Start's, the server applies conditional updates as a read and a write:
// put Serialized in front of it when several clients claim.
func StartProcess(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "ferretserve")
		if err != nil {
			build.err = err
			return
		}
		build.bin = filepath.Join(dir, "ferretserve")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", build.bin,
			"github.com/astra-app/astra/internal/store/ferrettest/ferretserve")
		// Not the race detector, whatever the test binary was built with.
		cmd.Env = append(os.Environ(), "GOFLAGS="+strings.ReplaceAll(os.Getenv("GOFLAGS"), "-race", ""))
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("build ferretserve: %v\n%s", build.err, build.out)
	}
	cmd := exec.Command(build.bin, t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ferretserve: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("ferretserve said nothing: %v", err)
	}
	return strings.TrimSpace(line)
}
