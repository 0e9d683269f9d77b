package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/pushpull/pushpull/protocol"
)

// sign prints each channel id signed with the security key, as the backend
// hands them to clients: <id>.<signature>.
func sign(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", os.Getenv("PUSHPULL_KEY"), "security key (env PUSHPULL_KEY)")
	algo := fs.String("algo", "sha1", "signature algorithm: sha1, sha256, sha512, md5")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pushpull sign --key KEY [--algo sha1] CHANNEL_ID...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	s, err := protocol.NewSigner(*key, *algo)
	if err != nil {
		return err
	}
	for _, id := range fs.Args() {
		fmt.Fprintln(stdout, s.SignChannel(id))
	}
	return nil
}
