package setup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"

	"github.com/escrow-backup/escrow/kit"
)

// DeliverKit hands the recovery kit text to where k names: a file (0600,
// replaced if it exists: a second run writes the same repository's kit) and
// a command, which reads it on its standard input. The kit is never on a
// command line, where every user of the machine could read it. The
// command's standard error goes to stderr, as any program's would; its
// standard output is discarded, since a program that echoes its input
// would print the kit.
func DeliverKit(ctx context.Context, text []byte, k KitAnswers, stderr io.Writer) error {
	if k.File != "" {
		if err := kit.WriteFile(k.File, text, true); err != nil {
			return fmt.Errorf("write the recovery kit to %s: %w", k.File, err)
		}
	}
	if len(k.Command) > 0 {
		cmd := exec.CommandContext(ctx, k.Command[0], k.Command[1:]...)
		cmd.Stdin = bytes.NewReader(text)
		cmd.Stdout, cmd.Stderr = nil, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("the kit command %s failed: %v (its messages are above; fix kit.command in the preseed, the kit was not confirmed)", k.Command[0], err)
		}
	}
	return nil
}
