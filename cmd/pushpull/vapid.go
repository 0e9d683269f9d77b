package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/pushpull/pushpull/internal/webpush"
)

// vapid prints a new VAPID key pair for Web Push, as the config's
// webPush object takes it (with --env, as environment variables).
func vapid(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vapid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := fs.Bool("env", false, "print PUSHPULL_VAPID_PRIVATE_KEY=... and the public key as a comment instead of JSON")
	subject := fs.String("subject", "mailto:admin@example.com", "the contact push services may use (mailto: or https:)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pushpull vapid [--subject mailto:you@example.com] [--env]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	priv, pub, err := webpush.GenerateVAPID()
	if err != nil {
		return err
	}
	if _, err := webpush.NewVAPID(priv, pub, *subject); err != nil {
		return err
	}
	if *env {
		fmt.Fprintf(stdout, "PUSHPULL_VAPID_PRIVATE_KEY=%s\n# public key (applicationServerKey): %s\n", priv, pub)
		return nil
	}
	b, _ := json.MarshalIndent(map[string]any{"webPush": map[string]string{
		"vapidPrivateKey": priv, "vapidPublicKey": pub, "subject": *subject,
	}}, "", "  ")
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
