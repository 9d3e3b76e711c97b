package config

// Example returns a complete configuration file with every field, each
// optional one at its default, and comments saying what they do. It parses
// as it is; docs/config.md quotes it whole (TestDocs).
func Example() string { return example }

const example = `# escrow agent configuration. Every field is described in docs/config.md.
# Check a file with: escrow config check --config /etc/escrow/escrow.yaml
# Durations are written like 10s, 2m, 1h30m or 2d.

# Where the backups go (required): an S3-compatible bucket, with an optional
# folder in it,
#   s3:https://HOST[:PORT]/BUCKET[/PREFIX]
# or an absolute directory path such as /srv/escrow-repo.
repository: s3:https://s3.example.com/backups/site1

# The file holding the repository password on one line (required). Keep it
# readable by root only: chmod 600 /etc/escrow/password.
password_file: /etc/escrow/password

# The host name recorded in snapshots. Empty: this machine's host name.
host: ""

# Credentials for an s3: repository. Secrets are only ever read from files.
s3:
  # Empty: $AWS_ACCESS_KEY_ID from the agent's environment.
  access_key_id: AKIAIOSFODNN7EXAMPLE
  # The file holding the secret key (chmod 600).
  # Empty: $AWS_SECRET_ACCESS_KEY (and $AWS_SESSION_TOKEN).
  secret_access_key_file: /etc/escrow/s3.secret
  # The file holding a session token, for temporary credentials. Optional.
  session_token_file: ""
  # Empty: $AWS_DEFAULT_REGION, else us-east-1.
  region: ""
  # A PEM file of extra CAs for an endpoint with a private certificate.
  # The certificate is always verified; this only adds whom to trust.
  ca_file: ""

# Directories to back up. May be empty only when databases is not.
sources:
  - path: /var/www/site            # an absolute path to an existing directory
    # Paths to skip, as with "escrow backup --exclude": shell wildcards
    # matched per path component, ** for any number of components, a
    # leading / to match from the root only. Quote patterns starting with *.
    exclude: ["*.log", "wp-content/cache"]
    exclude_file: []               # files of such patterns, one per line
    watch: true                    # back up changes within seconds; false: only at each rescan
    one_file_system: false         # true: do not descend into other mounted file systems
    tags: [site]                   # extra tags on this source's snapshots
    fresh_within: ""               # stale when not verified for this long; empty: twice rescan_every

# Databases to dump into the repository on a schedule; no temporary copy is
# written to disk.
databases:
  - type: mysql                    # mysql (MySQL and MariaDB), postgres or sqlite
    name: shop                     # unique label, for "escrow db dump shop"; empty: the type, or type-host
    socket: /run/mysqld/mysqld.sock  # mysql only; give host or socket, not both
    user: backup
    password_file: /etc/escrow/mysql.pass   # optional (chmod 600)
    databases: [shop]              # the databases to dump, or all: true
    every: 1h
    fresh_within: ""               # stale when no good dump for this long; empty: twice every
  - type: postgres
    host: 127.0.0.1                # a host name or address, or postgres's socket directory
    port: 5432                     # 0: the dump tool's default
    user: backup
    password_file: /etc/escrow/postgres.pass
    all: true                      # every database on the server
    every: 6h
  - type: sqlite
    path: /var/www/app/data.sqlite # sqlite only: the database file
    every: 1h

# When watched changes become snapshots.
schedule:
  quiet_period: 10s   # a snapshot is taken once nothing has changed for this long (at least 100ms)...
  max_delay: 60s      # ...or this long after the first change, if changes go on (at least quiet_period)
  rescan_every: 6h    # every source is read in full this often, for changes the watcher missed (at least 1m)

# Keep the agent light on a small server.
limits:
  upload_bandwidth: 0    # 0: unlimited; or a rate like 5MiB/s, 500KB/s, 40Mbit/s
  cpu_priority: low      # low (nice 10) or normal
  io_priority: low       # idle, low (best effort, lowest level) or normal
  parallelism: 2         # files read at once, 1 to 64

# The agent's own state (schedule, caches): an absolute path. It is created
# if missing.
state_dir: /var/lib/escrow

log:
  format: text    # text or json
  level: info     # debug, info, warn or error

# How often the agent writes its heartbeat to the store, for escrow fleet
# (at least 10s). See docs/monitoring.md.
heartbeat_every: 5m

# Alerts: on a failed backup or dump, a source older than its target
# freshness, a worse escrow doctor verdict, an unconfirmed recovery kit and
# suspected mass deletion; and a notice when each problem ends. Test with:
# escrow notify test. Remove the webhooks entry and leave email.server
# empty to send none.
notify:
  repeat_after: 24h      # a problem that lasts is sent again this often (at least 1m)
  webhooks:
    - url_file: /etc/escrow/webhook.url  # the file holding the URL (chmod 600: it holds a token)
      style: json        # json: a JSON POST (chat webhooks); ping: health-check URLs (URL, URL/fail)
  email:
    server: ""           # SMTP host:port, e.g. smtp.example.com:587; empty: no email
    tls: starttls        # starttls (port 587), tls (port 465), or none (a relay on this machine only)
    username: ""         # empty: no login
    password_file: ""    # the file holding the SMTP password (chmod 600)
    from: ""             # e.g. escrow@example.com
    to: []               # e.g. [owner@example.com]

# The Prometheus metrics endpoint, [HOST]:PORT; a port alone (:9310) listens
# on 127.0.0.1 only. Empty: off.
metrics_listen: ""
`
