package installer

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the files in packaging/ from the code")

// testOptions installs into a temporary root, running an executable that
// exists (systemd-analyze checks ExecStart).
func testOptions(t *testing.T) Options {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Options{Root: t.TempDir(), Executable: exe}
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// verifyUnit runs systemd-analyze verify on a unit written below a root;
// it loads the unit's drop-ins from next to it. Any output is a failure:
// systemd only warns about a key it does not know.
func verifyUnit(t *testing.T, unit string) {
	t.Helper()
	sa := testenv.RequireBinary(t, "systemd-analyze")
	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}

func TestInstallSystemdIntoRoot(t *testing.T) {
	o := testOptions(t)
	o.StateDir = "/srv/escrow-state"
	o.Writable = []string{"/srv/escrow-repo", "/var/www/app/db"}
	o.SharedTmp = true
	m, err := NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.Install()
	if err != nil {
		t.Fatal(err)
	}
	if in.File != "/etc/systemd/system/escrow.service" || in.Packaged || in.DropIn != dropInFile {
		t.Fatalf("installed %+v", in)
	}
	unit := filepath.Join(o.Root, in.File)
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != SystemdUnit(m.Options()) {
		t.Error("the unit written is not SystemdUnit")
	}
	if m.Options().ServiceConfig().Option["SystemdScript"] != string(data) {
		t.Error("the service configuration's SystemdScript is not the unit written")
	}
	verifyUnit(t, unit)
	dropIn, err := os.ReadFile(filepath.Join(o.Root, in.DropIn))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ReadWritePaths=-/srv/escrow-repo\n", "ReadWritePaths=-/srv/escrow-state\n", "ReadWritePaths=-/var/www/app/db\n", "PrivateTmp=no\n"} {
		if !strings.Contains(string(dropIn), want) {
			t.Errorf("drop-in lacks %q:\n%s", want, dropIn)
		}
	}
	for _, d := range []string{ConfigDir, StateDir, "/srv/escrow-state"} {
		if got := mode(t, filepath.Join(o.Root, d)); got != 0o700 {
			t.Errorf("%s: mode %04o, want 0700", d, got)
		}
	}
	if mode(t, unit) != 0o644 {
		t.Errorf("unit mode %04o, want 0644", mode(t, unit))
	}
	if st := m.Status(); st.State != Unknown || st.Detail == "" {
		t.Errorf("status below a root: %+v", st)
	}
}

// The unit as it is: every line a key systemd knows, with the hardening
// the service promises.
func TestServiceSystemdUnitContent(t *testing.T) {
	o := testOptions(t)
	o, err := o.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	unit := SystemdUnit(o)
	for _, want := range []string{
		"ExecStart=" + o.Executable + " agent --config /etc/escrow/escrow.yaml\n",
		"After=network-online.target\n", "Wants=network-online.target\n",
		"Restart=on-failure\n", "RestartSec=30\n", "StartLimitIntervalSec=600\n", "StartLimitBurst=5\n",
		"KillSignal=SIGTERM\n", "KillMode=mixed\n", "TimeoutStopSec=40\n",
		"NoNewPrivileges=yes\n", "ProtectSystem=strict\n", "ReadWritePaths=/var/lib/escrow\n",
		"StateDirectory=escrow\n", "StateDirectoryMode=0700\n",
		"PrivateTmp=yes\n", "ProtectHome=read-only\n", "UMask=0077\n",
		"ExecReload=/bin/kill -HUP $MAINPID\n", "WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	// Every path in it is absolute.
	for _, line := range strings.Split(unit, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		switch k {
		case "ExecStart", "ExecReload", "WorkingDirectory", "ConditionFileIsExecutable", "ReadWritePaths":
			if !strings.HasPrefix(strings.TrimPrefix(v, "-"), "/") {
				t.Errorf("%s: not an absolute path", line)
			}
		}
	}
}

func TestInstallKeepsConfigAndUninstallKeepsEverything(t *testing.T) {
	o := testOptions(t)
	cfgDir := filepath.Join(o.Root, ConfigDir)
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"escrow.yaml": "repository: /srv/repo\n", "password": "secret\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(o.Root, StateDir, "status.json")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // a second install changes nothing more
		in, err := m.Install()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && len(in.Notes) != 4 {
			t.Errorf("first install: notes %q, want the two directories and two files made private", in.Notes)
		}
		if i == 1 && len(in.Notes) != 0 {
			t.Errorf("second install: notes %q, want none", in.Notes)
		}
	}
	for name, content := range files {
		p := filepath.Join(cfgDir, name)
		if got, _ := os.ReadFile(p); string(got) != content {
			t.Errorf("%s: content changed to %q", name, got)
		}
		if got := mode(t, p); got != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", name, got)
		}
	}
	if got := mode(t, cfgDir); got != 0o700 {
		t.Errorf("%s: mode %04o, want 0700", ConfigDir, got)
	}

	removed, err := m.Uninstall()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{"/etc/systemd/system/escrow.service", dropInFile}) {
		t.Errorf("removed %q", removed)
	}
	for name := range files {
		if _, err := os.Stat(filepath.Join(cfgDir, name)); err != nil {
			t.Errorf("uninstall: %v", err)
		}
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("uninstall: %v", err)
	}
	if _, err := os.Stat(filepath.Join(o.Root, filepath.Dir(dropInFile))); !os.IsNotExist(err) {
		t.Errorf("the empty drop-in directory is left: %v", err)
	}
	if _, err := m.Uninstall(); err != ErrNotInstalled {
		t.Errorf("second uninstall: %v, want ErrNotInstalled", err)
	}
}

// A package's unit that runs the same command is enabled as it is, not
// copied, and stays on uninstall.
func TestInstallUsesPackagedUnit(t *testing.T) {
	o := testOptions(t)
	o, err := o.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	packaged := filepath.Join(o.Root, "/usr/lib/systemd/system/escrow.service")
	if err := writeFileAtomic(packaged, []byte(SystemdUnit(o)), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.Install()
	if err != nil {
		t.Fatal(err)
	}
	if !in.Packaged || in.File != "/usr/lib/systemd/system/escrow.service" {
		t.Fatalf("installed %+v, want the packaged unit", in)
	}
	if _, err := os.Stat(filepath.Join(o.Root, "/etc/systemd/system/escrow.service")); !os.IsNotExist(err) {
		t.Errorf("a copy of the packaged unit was written: %v", err)
	}
	if _, err := m.Uninstall(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(packaged); err != nil {
		t.Errorf("uninstall removed the package's unit: %v", err)
	}

	// Another command line gets a unit of its own.
	o.ConfigFile = "/etc/escrow/other.yaml"
	m, err = NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	if in, err := m.Install(); err != nil || in.Packaged {
		t.Fatalf("install with another config: %+v, %v", in, err)
	}
}

func TestInstallDropIn(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"defaults", Options{ConfigFile: ConfigFile, StateDir: StateDir}, nil},
		{"state elsewhere", Options{ConfigFile: ConfigFile, StateDir: "/srv/state/"}, []string{"ReadWritePaths=-/srv/state"}},
		{"repository and sqlite, once each", Options{ConfigFile: ConfigFile, StateDir: StateDir, Writable: []string{"/srv/repo", "/var/www/db", "/srv/repo"}},
			[]string{"ReadWritePaths=-/srv/repo", "ReadWritePaths=-/var/www/db"}},
		{"socket in /tmp", Options{ConfigFile: ConfigFile, StateDir: StateDir, SharedTmp: true}, []string{"PrivateTmp=no"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, l := range strings.Split(SystemdDropIn(tc.o), "\n") {
				if l != "" && !strings.HasPrefix(l, "#") && l != "[Service]" {
					got = append(got, l)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestInstallOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{Executable: "escrow"},
		{Executable: "/usr/bin/escrow", ConfigFile: "escrow.yaml"},
		{Executable: "/opt/my escrow/escrow"},
		{Executable: "/usr/bin/escrow", Writable: []string{"/srv/$HOME"}},
		{Executable: "/usr/bin/escrow", Root: "tmp"},
	} {
		o, err := o.Defaults()
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
	o, err := (Options{Executable: "/usr/local/bin/escrow", ConfigFile: "/etc/escrow/site-1.yaml"}).Defaults()
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Error(err)
	}
}

// Every option kardianos/service reads is set, so no library default
// decides how the service behaves.
func TestServiceConfigSetsEveryOption(t *testing.T) {
	o, err := testOptions(t).Defaults()
	if err != nil {
		t.Fatal(err)
	}
	c := o.ServiceConfig()
	if c.Name != "escrow" || c.DisplayName == "" || c.Description == "" || c.Executable != o.Executable ||
		!slices.Equal(c.Arguments, []string{"agent", "--config", "/etc/escrow/escrow.yaml"}) || c.WorkingDirectory != StateDir {
		t.Errorf("config %+v", c)
	}
	for _, k := range []string{
		"UserService", "SystemdScript", "SysvScript", "Restart", "ReloadSignal", "PIDFile", "LogOutput", "LogDirectory", "LimitNOFILE", "SuccessExitStatus",
		"LaunchdConfig", "KeepAlive", "RunAtLoad", "SessionCreate",
		"StartType", "DelayedAutoStart", "Interactive", "Password", "OnFailure", "OnFailureDelayDuration", "OnFailureResetPeriod",
	} {
		if _, ok := c.Option[k]; !ok {
			t.Errorf("option %s is not set", k)
		}
	}
	if c.Option["OnFailure"] != "restart" || c.Option["OnFailureDelayDuration"] != "30s" {
		t.Errorf("Windows recovery: %v after %v", c.Option["OnFailure"], c.Option["OnFailureDelayDuration"])
	}
}

func TestServiceLaunchdPlist(t *testing.T) {
	o, err := testOptions(t).Defaults()
	if err != nil {
		t.Fatal(err)
	}
	plist := LaunchdPlist(o)
	dec := xml.NewDecoder(strings.NewReader(plist))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, plist)
		}
	}
	for _, want := range []string{"<string>" + o.Executable + "</string>", "<key>ExitTimeOut</key>\n\t<integer>40</integer>", "<key>RunAtLoad</key>\n\t<true/>", "<key>SuccessfulExit</key>\n\t\t<false/>"} {
		if !strings.Contains(plist, want) {
			t.Errorf("plist lacks %q", want)
		}
	}
}

// The files the packages ship are the ones the code makes; go test
// ./installer -update rewrites them.
func TestInstallPackagingFilesCurrent(t *testing.T) {
	o := Options{Executable: "/usr/bin/escrow", ConfigFile: ConfigFile, StateDir: StateDir}
	for _, f := range []struct{ path, want string }{
		{"../packaging/escrow.service", SystemdUnit(o)},
		{"../packaging/escrow.yaml.example", config.Example()},
	} {
		if *update {
			if err := os.WriteFile(f.path, []byte(f.want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != f.want {
			t.Errorf("%s is out of date: go test ./installer -run PackagingFiles -update", f.path)
		}
	}
}

func TestInstallCheckExecutable(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "escrow")
	if err := CheckExecutable(exe); err == nil || !strings.Contains(err.Error(), "/usr/local/bin/escrow") {
		t.Errorf("an executable in /tmp: %v", err)
	}
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Skip(err)
	}
	if err := CheckExecutable(sh); err != nil {
		t.Errorf("%s: %v", sh, err)
	}
}
