// Command pushpull is the Bitrix24 Push & Pull server and its tools.
//
//	pushpull serve [--config FILE] [flags]   run the server
//	pushpull checkconfig [serve's flags]     print the configuration serve would run, and what is wrong with it
//	pushpull bench <idle|fanout|unicast|all> measure a server
//	pushpull sign --key KEY [--algo A] ID... print signed channel ids
//	pushpull publish --channel ID ...        publish a message
//	pushpull subscribe --channel ID ...      print the messages that arrive
//	pushpull stats                           print the processes' statistics
//	pushpull vapid                           print a new Web Push (VAPID) key pair
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: pushpull <command> [flags]

commands:
  serve     run the push server (pushpull serve --config FILE; -h for flags)
  checkconfig
            validate and print the configuration serve would run with the same flags
  bench     load-test a server (pushpull bench all; -h for flags)
  sign      sign channel ids with the security key
  publish   publish a message to channels, or to users through the backend API
  subscribe print the messages that arrive on channels, one JSON object a line
  stats     print the statistics of the server's processes
  vapid     print a new VAPID key pair for Web Push (webPush in the config)
  version   print the version
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "pushpull:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "checkconfig":
		return checkconfig(rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout)
	case "sign":
		return sign(rest, stdout, stderr)
	case "publish":
		return publishCmd(ctx, rest, os.Stdin, stdout, stderr)
	case "subscribe":
		return subscribe(ctx, rest, stdout, stderr)
	case "stats":
		return stats(ctx, rest, stdout, stderr)
	case "vapid":
		return vapid(rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "pushpull", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}
