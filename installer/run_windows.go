package installer

import (
	"fmt"
	"os"

	"github.com/kardianos/service"
)

// runWindowsService hands p to the service control manager. The manager
// only ever asks a service to stop; an agent that ends on its own (a bad
// configuration, a wrong password) would leave a service that reports
// running and does nothing. So the process then exits with status 1
// without telling the manager, which counts that as a failure and applies
// the recovery actions (restart after 30 s).
func runWindowsService(p *Program, o Options) error {
	s, err := service.New(p, o.ServiceConfig())
	if err != nil {
		return err
	}
	go func() {
		<-p.Done()
		if p.stopRequested() {
			return
		}
		fmt.Fprintf(os.Stderr, "escrow agent ended without being asked: %v\n", p.Err())
		os.Exit(1)
	}()
	return s.Run()
}
