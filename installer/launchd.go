package installer

import (
	"fmt"
	"strings"
)

// LaunchdPlist is the launchd job for macOS (/Library/LaunchDaemons). It
// starts at boot, is started again only when it fails (KeepAlive with
// SuccessfulExit false), at most every 30 s, and gets 40 s from SIGTERM to
// SIGKILL where launchd's default is 20. Paths are checked by Validate, so
// they need no XML escaping.
func LaunchdPlist(o Options) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w(`<?xml version="1.0" encoding="UTF-8"?>`)
	w(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">`)
	w(`<!-- The escrow agent as a launchd daemon, written by "escrow install" (docs/service.md). -->`)
	w(`<plist version="1.0">`)
	w(`<dict>`)
	w("\t<key>Label</key>\n\t<string>%s</string>", Name)
	w("\t<key>ProgramArguments</key>\n\t<array>")
	for _, a := range append([]string{o.Executable}, o.Arguments()...) {
		w("\t\t<string>%s</string>", a)
	}
	w("\t</array>")
	w("\t<key>UserName</key>\n\t<string>root</string>")
	w("\t<key>WorkingDirectory</key>\n\t<string>%s</string>", o.StateDir)
	w("\t<key>Umask</key>\n\t<integer>63</integer>") // 0077
	w("\t<key>RunAtLoad</key>\n\t<true/>")
	w("\t<key>KeepAlive</key>\n\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>")
	w("\t<key>ThrottleInterval</key>\n\t<integer>%d</integer>", restartDelay)
	w("\t<key>ExitTimeOut</key>\n\t<integer>%d</integer>", stopTimeoutManager)
	w("\t<key>ProcessType</key>\n\t<string>Background</string>")
	w("\t<key>StandardOutPath</key>\n\t<string>%s</string>", LogFile)
	w("\t<key>StandardErrorPath</key>\n\t<string>%s</string>", LogFile)
	w(`</dict>`)
	w(`</plist>`)
	return b.String()
}
