package config

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The field tables: one per mapping of the schema. Their keys must be the
// yaml tags of the matching struct (TestFieldTablesMatchTags).

func (d *decoder) topFields(c *Config) []field {
	return []field{
		{"repository", d.str(&c.Repository)},
		{"password_file", d.path(&c.PasswordFile, true)},
		{"host", d.str(&c.Host)},
		{"s3", func(n *yaml.Node, p string) { d.mapping(n, p, d.s3Fields(&c.S3)) }},
		{"sources", func(n *yaml.Node, p string) {
			d.seq(n, p, func(v *yaml.Node, p string) {
				s := Source{Watch: true}
				if v.Kind == yaml.ScalarNode && !isNull(v) {
					d.add(v.Line, p, "expected key: value lines, got %s; write it as - path: %s", describe(v), v.Value)
				} else {
					d.mapping(v, p, d.sourceFields(&s))
				}
				// Appended even when broken, so that c.Sources[i] stays
				// "sources[i]" in messages.
				c.Sources = append(c.Sources, s)
			})
		}},
		{"databases", func(n *yaml.Node, p string) {
			d.seq(n, p, func(v *yaml.Node, p string) {
				db := Database{Every: DefaultEvery}
				d.mapping(v, p, d.databaseFields(&db))
				c.Databases = append(c.Databases, db)
			})
		}},
		{"schedule", func(n *yaml.Node, p string) { d.mapping(n, p, d.scheduleFields(&c.Schedule)) }},
		{"limits", func(n *yaml.Node, p string) { d.mapping(n, p, d.limitsFields(&c.Limits)) }},
		{"state_dir", d.path(&c.StateDir, false)},
		{"log", func(n *yaml.Node, p string) { d.mapping(n, p, d.logFields(&c.Log)) }},
		{"heartbeat_every", d.duration(&c.HeartbeatEvery, 10*time.Second)},
		{"notify", func(n *yaml.Node, p string) { d.mapping(n, p, d.notifyFields(&c.Notify)) }},
		{"metrics_listen", d.str(&c.MetricsListen)},
	}
}

func (d *decoder) s3Fields(s *S3) []field {
	return []field{
		{"access_key_id", d.str(&s.AccessKeyID)},
		{"secret_access_key_file", d.path(&s.SecretAccessKeyFile, true)},
		{"session_token_file", d.path(&s.SessionTokenFile, true)},
		{"region", d.str(&s.Region)},
		{"ca_file", d.path(&s.CAFile, false)},
	}
}

func (d *decoder) sourceFields(s *Source) []field {
	return []field{
		{"path", d.path(&s.Path, false)},
		{"exclude", d.strs(&s.Exclude)},
		{"exclude_file", func(n *yaml.Node, p string) {
			var files []string
			d.strs(&files)(n, p)
			for i, f := range files {
				fp := fmt.Sprintf("%s[%d]", p, i)
				if !filepath.IsAbs(f) {
					d.at(fp, "%q is not an absolute path; start it with /", f)
					continue
				}
				s.ExcludeFile = append(s.ExcludeFile, filepath.Clean(f))
			}
		}},
		{"watch", d.boolean(&s.Watch)},
		{"one_file_system", d.boolean(&s.OneFileSystem)},
		{"tags", d.strs(&s.Tags)},
		{"fresh_within", d.duration(&s.FreshWithin, time.Minute)},
	}
}

func (d *decoder) databaseFields(db *Database) []field {
	return []field{
		{"type", func(n *yaml.Node, p string) {
			s, ok := d.scalar(n, p)
			switch t := DBType(s); {
			case !ok:
			case t == MySQL || t == Postgres || t == SQLite:
				db.Type = t
			case strings.EqualFold(s, "mariadb"):
				d.add(n.Line, p, "%q is not one of mysql, postgres, sqlite; use mysql for MariaDB", s)
			case strings.EqualFold(s, "postgresql"):
				d.add(n.Line, p, "%q is not one of mysql, postgres, sqlite; write postgres", s)
			default:
				d.add(n.Line, p, "%q is not one of mysql, postgres, sqlite", s)
			}
		}},
		{"name", d.str(&db.Name)},
		{"host", d.str(&db.Host)},
		{"port", d.integer(&db.Port, 0, 65535)},
		{"socket", d.path(&db.Socket, false)},
		{"user", d.str(&db.User)},
		{"password_file", d.path(&db.PasswordFile, true)},
		{"databases", d.strs(&db.Databases)},
		{"all", d.boolean(&db.All)},
		{"path", d.path(&db.Path, false)},
		{"every", d.duration(&db.Every, 1)},
		{"fresh_within", d.duration(&db.FreshWithin, time.Minute)},
	}
}

func (d *decoder) scheduleFields(s *Schedule) []field {
	return []field{
		{"quiet_period", d.duration(&s.QuietPeriod, 100*time.Millisecond)},
		{"max_delay", d.duration(&s.MaxDelay, 1)},
		{"rescan_every", d.duration(&s.RescanEvery, time.Minute)},
	}
}

func (d *decoder) limitsFields(l *Limits) []field {
	return []field{
		{"upload_bandwidth", func(n *yaml.Node, p string) {
			s, ok := d.scalar(n, p)
			if !ok || s == "" {
				return
			}
			v, err := parseBandwidth(s)
			if err != nil {
				d.add(n.Line, p, "%q %v (write it like 5MiB/s, 500KB/s or 40Mbit/s; 0 for no limit)", s, err)
				return
			}
			l.UploadBandwidth = v
		}},
		{"cpu_priority", d.oneOf(&l.CPUPriority, "low", "normal")},
		{"io_priority", d.oneOf(&l.IOPriority, "idle", "low", "normal")},
		{"parallelism", d.integer(&l.Parallelism, 1, 64)},
	}
}

func (d *decoder) logFields(l *Log) []field {
	return []field{
		{"format", d.oneOf(&l.Format, "text", "json")},
		{"level", func(n *yaml.Node, p string) {
			var s string
			d.oneOf(&s, "debug", "info", "warn", "error")(n, p)
			if s != "" {
				_ = l.Level.UnmarshalText([]byte(s))
			}
		}},
	}
}

// path decodes an absolute path, made clean. A secret file's field does not
// echo a bad value: it may be the secret itself, written in the wrong place.
func (d *decoder) path(dst *string, secret bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, p string) {
		s, ok := d.scalar(n, p)
		switch {
		case !ok || s == "":
		case filepath.IsAbs(s):
			*dst = filepath.Clean(s)
		case secret:
			d.add(n.Line, p, "not an absolute path; give the path of a file holding the secret, starting with / (if the secret itself is written here, move it to a file readable only by root)")
		default:
			d.add(n.Line, p, "%q is not an absolute path; start it with /", s)
		}
	}
}

// duration decodes a duration of at least least.
func (d *decoder) duration(dst *time.Duration, least time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, p string) {
		s, ok := d.scalar(n, p)
		if !ok || s == "" {
			return
		}
		v, err := parseDuration(s)
		switch {
		case err != nil:
			d.add(n.Line, p, "%q is not a duration (write it like 10s or 2m; also h, ms, and d for days)", s)
		case v <= 0:
			d.add(n.Line, p, "%s: must be more than zero", s)
		case v < least:
			d.add(n.Line, p, "%s is too short; the least is %s", s, formatDuration(least))
		default:
			*dst = v
		}
	}
}

// parseDuration is time.ParseDuration plus a leading whole number of days:
// "2d", "1d12h".
func parseDuration(s string) (time.Duration, error) {
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, err
	}
	var extra time.Duration
	if rest != "" {
		if extra, err = time.ParseDuration(rest); err != nil || extra < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
	}
	return time.Duration(n)*24*time.Hour + extra, nil
}

// formatDuration prints a duration the way a user writes one: 1h, not
// 1h0m0s.
func formatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseBandwidth reads a rate such as "5MiB/s" or "40Mbit/s" as bytes per
// second. A bare number other than 0 is refused: "5" is too likely to mean
// 5 MB/s to be taken as 5 bytes.
func parseBandwidth(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	num, unit := t, ""
	if i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }); i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	switch {
	case err != nil:
		return 0, errors.New("is not a rate")
	case unit == "" && v == 0:
		return 0, nil
	case unit == "":
		return 0, errors.New("has no unit")
	}
	mult := rateUnit(unit)
	if mult == 0 {
		return 0, fmt.Errorf("has an unknown unit %q", unit)
	}
	b := math.Round(v * mult)
	switch {
	case b < 1 && v != 0:
		return 0, errors.New("is less than one byte per second")
	case b > 1<<50:
		return 0, errors.New("is too large")
	}
	return int64(b), nil
}

// rateUnit returns the bytes in one unit, or 0 for an unknown unit. Bytes
// and bits are told apart by case (MB, Mbit), as on every network device.
func rateUnit(u string) float64 {
	switch u {
	case "B":
		return 1
	case "kB", "KB":
		return 1e3
	case "MB":
		return 1e6
	case "GB":
		return 1e9
	case "KiB":
		return 1 << 10
	case "MiB":
		return 1 << 20
	case "GiB":
		return 1 << 30
	case "bit", "bps":
		return 1.0 / 8
	case "kbit", "Kbit", "kbps", "Kbps":
		return 1e3 / 8
	case "Mbit", "Mbps":
		return 1e6 / 8
	case "Gbit", "Gbps":
		return 1e9 / 8
	}
	return 0
}
