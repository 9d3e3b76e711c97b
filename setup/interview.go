package setup

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// CheckStore connects to the store the answers name and reports what is
// wrong: unreachable, credentials refused, bucket missing and not creatable.
type CheckStore func(ctx context.Context, a *Answers) error

// maxStoreAttempts bounds how often the store questions are asked again.
const maxStoreAttempts = 5

// Interview asks the owner for the answers on t. a holds the defaults (the
// previous run's configuration, flags, the environment) and receives the
// answers. The store is checked as soon as its questions are answered, and
// they are asked again while the check fails. sites are proposed as
// sources, and their databases as dumps, one question each.
func Interview(ctx context.Context, t Terminal, a *Answers, sites []Site, check CheckStore) error {
	t.Say("escrow setup: where the backups go, what to protect, the recovery kit, the service.\n\n")
	if err := askStore(ctx, t, a, check); err != nil {
		return err
	}
	if err := askSources(t, a, sites); err != nil {
		return err
	}
	if err := askDatabases(t, a, sites); err != nil {
		return err
	}
	if len(a.Sources) == 0 && len(a.Databases) == 0 {
		return fmt.Errorf("nothing to back up: no directory or database was chosen; run escrow setup again and accept a site or type a directory")
	}
	return askKit(t, a)
}

func askStore(ctx context.Context, t Terminal, a *Answers, check CheckStore) error {
	t.Say("1. Storage\nThe backups go to S3-compatible object storage that your hosting provider does\nnot control (s3:https://HOST/BUCKET/PREFIX), or to a directory (a mounted disk).\n")
	for attempt := 1; ; attempt++ {
		repo, err := AskDefault(t, "Repository address", a.Repository)
		if err != nil {
			return err
		}
		if repo == "" {
			t.Say("An address is needed.\n")
			continue
		}
		a.Repository = repo
		if strings.HasPrefix(repo, "s3:") {
			if a.S3.AccessKeyID, err = AskDefault(t, "S3 access key ID", a.S3.AccessKeyID); err != nil {
				return err
			}
			q := "S3 secret access key (not shown): "
			if a.S3.SecretAccessKey != "" {
				q = "S3 secret access key (not shown; empty keeps the current one): "
			}
			secret, err := t.AskSecret(q)
			if err != nil {
				return err
			}
			if secret != "" {
				a.S3.SecretAccessKey = secret
			}
			if a.S3.Region, err = AskDefault(t, "Region (empty: us-east-1)", a.S3.Region); err != nil {
				return err
			}
			t.Say("Object Lock keeps every stored version for a retention period, so that nobody\nwith this server's credentials can delete or overwrite the backups.\n")
			if a.ObjectLock, err = AskYesNo(t, "Use a bucket with Object Lock", a.ObjectLock); err != nil {
				return err
			}
			if a.ObjectLock {
				period, mode := a.Retention()
				if a.ObjectLockRetention, err = AskDefault(t, "Keep each version for (days or years, e.g. 30d, 1y)", period); err != nil {
					return err
				}
				t.Say("Governance mode lets credentials with the bypass right (the owner's) remove versions early;\ncompliance mode lets no one, not even the owner, until the retention ends.\n")
				if a.ObjectLockMode, err = AskDefault(t, "Retention mode (governance or compliance)", mode); err != nil {
					return err
				}
			}
		} else if !filepath.IsAbs(repo) {
			t.Say("A directory must be an absolute path (starting with /).\n")
			continue
		}
		t.Say("Checking %s ...\n", repo)
		err = check(ctx, a)
		if err == nil {
			t.Say("The store answers and the credentials work.\n\n")
			return nil
		}
		t.Say("That did not work: %v\n", err)
		if attempt == maxStoreAttempts {
			return err
		}
		t.Say("Let's try again.\n")
	}
}

func askSources(t Terminal, a *Answers, sites []Site) error {
	t.Say("2. What to protect\n")
	if len(sites) == 0 {
		t.Say("No web root was found (looked in /var/www and the nginx and Apache site configurations).\n")
	}
	var chosen []Source
	for _, s := range sites {
		src := SiteSource(s)
		if prev := findSource(a.Sources, s.Path); prev != nil {
			src = *prev
		}
		ok, err := AskYesNo(t, fmt.Sprintf("Back up %s (found in %s)?", s.Path, s.Why), true)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if src.Exclude, err = AskList(t, "  Leave out", src.Exclude); err != nil {
			return err
		}
		chosen = append(chosen, src)
	}
	// Sources of a previous run that are not sites found now stay
	// proposed.
	var others []string
	for _, s := range a.Sources {
		if findSite(sites, s.Path) == nil {
			others = append(others, s.Path)
		}
	}
	more, err := AskList(t, "Other directories to back up", others)
	if err != nil {
		return err
	}
	for _, p := range more {
		if !filepath.IsAbs(p) {
			t.Say("Skipping %s: give absolute paths.\n", p)
			continue
		}
		p = filepath.Clean(p)
		if prev := findSource(a.Sources, p); prev != nil {
			chosen = append(chosen, *prev)
			continue
		}
		chosen = append(chosen, Source{Path: p, Exclude: append([]string(nil), DefaultExcludes...)})
	}
	a.Sources = chosen
	t.Say("\n")
	return nil
}

func askDatabases(t Terminal, a *Answers, sites []Site) error {
	var found []Database
	for _, s := range sites {
		for _, f := range s.Databases {
			found = append(found, SiteDatabase(f))
		}
	}
	if len(found) == 0 && len(a.Databases) == 0 {
		t.Say("3. Databases: none found in the sites' configuration (wp-config.php, .env).\n\n")
		return nil
	}
	t.Say("3. Databases (dumped every hour, streamed into the backup with no copy on disk)\n")
	// The previous run's entries first, then those found that are new.
	cand := &Answers{}
	for _, db := range append(a.Databases, found...) {
		AddDatabase(cand, db)
	}
	a.Databases = nil
	for _, db := range cand.Databases {
		ok, err := AskYesNo(t, "Dump "+db.Describe()+"?", true)
		if err != nil {
			return err
		}
		if ok {
			AddDatabase(a, db)
		}
	}
	t.Say("\n")
	return nil
}

func askKit(t Terminal, a *Answers) error {
	t.Say("4. Recovery kit\nThe kit holds the repository's address and password: with it, and only with it,\nthe backups can be restored on any machine. It is written to a file readable by\nroot only, and you must then store it OFF this server.\n")
	var err error
	if a.Kit.File, err = AskDefault(t, "Write the kit to", a.Kit.File); err != nil {
		return err
	}
	if strings.HasPrefix(a.Repository, "s3:") {
		inc, err := AskYesNo(t, "Put the S3 secret key in the kit, so the kit alone restores?", On(a.Kit.IncludeCredentials, true))
		if err != nil {
			return err
		}
		a.Kit.IncludeCredentials = &inc
	}
	t.Say("\n")
	return nil
}

func findSource(list []Source, path string) *Source {
	for i := range list {
		if list[i].Path == path {
			return &list[i]
		}
	}
	return nil
}

func findSite(sites []Site, path string) *Site {
	for i := range sites {
		if sites[i].Path == path {
			return &sites[i]
		}
	}
	return nil
}
