// Command astra is Astra's responder: the API, the live stream, sign-in, the
// dashboard, the dispatcher, an embedded Julep-compatible engine, and the
// tools to deploy and run Julep tasks.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var (
			ue *usageError
			ee *exitError
		)
		// An exitError's command has already said what went wrong.
		if !errors.As(err, &ee) && (!errors.As(err, &ue) || !ue.printed) {
			fmt.Fprintln(os.Stderr, "astra:", err)
		}
		os.Exit(exitCode(err))
	}
}
