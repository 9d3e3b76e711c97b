package database

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const wpConfig = `<?php
/**
 * The base configuration for WordPress
 *
 * @package WordPress
 */

// ** Database settings - You can get this info from your web host ** //
/** The name of the database for WordPress */
define( 'DB_NAME', 'wp_shop' );

/** Database username */
define( 'DB_USER', "shop_user" );

/** Database password */
define( 'DB_PASSWORD', 'p@ss\'w"rd\\#1' );

/** Database hostname */
define( 'DB_HOST', '%s' );
// define( 'DB_HOST', 'old-server.example.com' );
/* define( 'DB_NAME', 'commented_out' ); */
# define( 'DB_USER', 'nobody' );

/** Database charset to use in creating database tables. */
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );

define('AUTH_KEY',         'put your unique phrase here');
$table_prefix = 'wp_';
define( 'WP_DEBUG', false );
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
`

func TestDBParseWPConfig(t *testing.T) {
	for _, tc := range []struct {
		host   string
		want   Spec
		wantOK bool
	}{
		{"localhost", Spec{Host: "localhost"}, true},
		{"localhost:3307", Spec{Host: "localhost", Port: 3307}, true},
		{"127.0.0.1:3306", Spec{Host: "127.0.0.1", Port: 3306}, true},
		{"localhost:/var/run/mysqld/mysqld.sock", Spec{Host: "localhost", Socket: "/var/run/mysqld/mysqld.sock"}, true},
		{":/tmp/mysql.sock", Spec{Socket: "/tmp/mysql.sock"}, true},
		{"db.example.com:3306:/tmp/x.sock", Spec{Host: "db.example.com", Port: 3306, Socket: "/tmp/x.sock"}, true},
		{"[::1]:3306", Spec{Host: "::1", Port: 3306}, true},
		{"::1", Spec{Host: "::1"}, true},
		{"p:mysql.internal", Spec{Host: "mysql.internal"}, true},
		{"", Spec{}, true},
	} {
		t.Run(tc.host, func(t *testing.T) {
			got, ok := parseWPConfig([]byte(strings.Replace(wpConfig, "%s", tc.host, 1)))
			want := tc.want
			want.Type, want.User, want.Password, want.Databases = MySQL, "shop_user", `p@ss'w"rd\#1`, []string{"wp_shop"}
			if ok != tc.wantOK || !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v %v (password %q), want %#v", got, ok, got.Password, want)
			}
		})
	}
	if _, ok := parseWPConfig([]byte("<?php\n// define('DB_NAME', 'x');\ndefine('DB_NAME', getenv('DB'));\n")); ok {
		t.Error("found a database where DB_NAME is commented out or not a literal")
	}
}

func TestDBParseDotenv(t *testing.T) {
	src := "APP_NAME=\"My Shop\"\r\n" +
		"# DB_PASSWORD=commented\n" +
		"export DB_CONNECTION=mysql\n" +
		"DB_HOST=127.0.0.1 # the local server\n" +
		"DB_PORT=3307\n" +
		"DB_DATABASE=laravel\n" +
		"DB_USERNAME='laravel_user'\n" +
		"DB_PASSWORD=\"s3cr\\\"et #not a comment ${APP_NAME}\"\n" +
		"LITERAL='no ${APP_NAME} here'\n" +
		"DOLLAR=pa$$word\n" +
		"MULTI=\"line one\nline two\"\n" +
		"EMPTY=\n" +
		"AFTER=ok\n"
	got := parseDotenv(src)
	want := map[string]string{
		"APP_NAME": "My Shop", "DB_CONNECTION": "mysql", "DB_HOST": "127.0.0.1", "DB_PORT": "3307",
		"DB_DATABASE": "laravel", "DB_USERNAME": "laravel_user", "DB_PASSWORD": `s3cr"et #not a comment My Shop`,
		"LITERAL": "no ${APP_NAME} here", "DOLLAR": "pa$$word", "MULTI": "line one\nline two", "EMPTY": "", "AFTER": "ok",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestDBSpecFromEnv(t *testing.T) {
	dir := "/var/www/app"
	for _, tc := range []struct {
		name string
		vars map[string]string
		want Spec
		ok   bool
	}{
		{"laravel mysql", map[string]string{"DB_CONNECTION": "mysql", "DB_HOST": "127.0.0.1", "DB_PORT": "3306", "DB_DATABASE": "shop", "DB_USERNAME": "u", "DB_PASSWORD": "pw"},
			Spec{Type: MySQL, Host: "127.0.0.1", Port: 3306, User: "u", Password: "pw", Databases: []string{"shop"}}, true},
		{"laravel mariadb socket", map[string]string{"DB_CONNECTION": "mariadb", "DB_SOCKET": "/run/mysqld/mysqld.sock", "DB_DATABASE": "shop", "DB_USERNAME": "u"},
			Spec{Type: MySQL, Socket: "/run/mysqld/mysqld.sock", User: "u", Databases: []string{"shop"}}, true},
		{"laravel pgsql socket folder", map[string]string{"DB_CONNECTION": "pgsql", "DB_HOST": "/var/run/postgresql", "DB_DATABASE": "shop", "DB_USERNAME": "u"},
			Spec{Type: Postgres, Socket: "/var/run/postgresql", User: "u", Databases: []string{"shop"}}, true},
		{"laravel sqlite default", map[string]string{"DB_CONNECTION": "sqlite"},
			Spec{Type: SQLite, Path: "/var/www/app/database/database.sqlite"}, true},
		{"laravel sqlite relative", map[string]string{"DB_CONNECTION": "sqlite", "DB_DATABASE": "storage/app.db"},
			Spec{Type: SQLite, Path: "/var/www/app/storage/app.db"}, true},
		{"laravel sqlite memory", map[string]string{"DB_CONNECTION": "sqlite", "DB_DATABASE": ":memory:"}, Spec{}, false},
		{"no connection", map[string]string{"DB_DATABASE": "shop"}, Spec{}, false},
		{"sqlsrv", map[string]string{"DB_CONNECTION": "sqlsrv", "DB_DATABASE": "shop"}, Spec{}, false},
		{"symfony mysql url", map[string]string{"DATABASE_URL": "mysql://app:p%40ss@127.0.0.1:3306/app?serverVersion=8.0.32&charset=utf8mb4"},
			Spec{Type: MySQL, Host: "127.0.0.1", Port: 3306, User: "app", Password: "p@ss", Databases: []string{"app"}}, true},
		{"symfony postgres url", map[string]string{"DATABASE_URL": "postgresql://app:pw@db:5432/app?serverVersion=16&charset=utf8"},
			Spec{Type: Postgres, Host: "db", Port: 5432, User: "app", Password: "pw", Databases: []string{"app"}}, true},
		{"doctrine unix socket", map[string]string{"DATABASE_URL": "mysql://app:pw@localhost/app?unix_socket=/var/run/mysqld/mysqld.sock"},
			Spec{Type: MySQL, Host: "localhost", Socket: "/var/run/mysqld/mysqld.sock", User: "app", Password: "pw", Databases: []string{"app"}}, true},
		{"symfony sqlite url", map[string]string{"DATABASE_URL": "sqlite:///%kernel.project_dir%/var/data.db"},
			Spec{Type: SQLite, Path: "/var/www/app/var/data.db"}, true},
		{"laravel 11 DB_URL wins", map[string]string{"DB_CONNECTION": "mysql", "DB_DATABASE": "other", "DB_URL": "mariadb://u:pw@10.0.0.5/shop"},
			Spec{Type: MySQL, Host: "10.0.0.5", User: "u", Password: "pw", Databases: []string{"shop"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := specFromEnv(tc.vars, dir)
			if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v %v (password %q), want %#v", got, ok, got.Password, tc.want)
			}
		})
	}
}

// Discover walks a server's web root, finds each site's database once,
// lets .env.local override .env, and skips the folders that hold no
// configuration.
func TestDBDiscoverTree(t *testing.T) {
	root := t.TempDir()
	write := writer(t, root)
	write("blog/wp-config.php", strings.Replace(wpConfig, "%s", "localhost:/run/mysqld/mysqld.sock", 1))
	write("blog/wp-content/plugins/backup/wp-config.php", "<?php // a sample config in a plugin\n")
	write("shop/.env", "DB_CONNECTION=pgsql\nDB_HOST=127.0.0.1\nDB_PORT=5432\nDB_DATABASE=shop\nDB_USERNAME=shop\nDB_PASSWORD=from-env\n")
	write("shop/.env.local", "DB_PASSWORD=from-env-local\n")
	write("shop/.env.example", "DB_CONNECTION=mysql\nDB_DATABASE=example\n")
	write("shop/vendor/laravel/.env", "DB_CONNECTION=mysql\nDB_DATABASE=vendored\n")
	write("copy/wp-config.php", strings.Replace(wpConfig, "%s", "localhost:/run/mysqld/mysqld.sock", 1)) // same database again
	write("api/.env", "DATABASE_URL=\"sqlite:///%kernel.project_dir%/var/data.db\"\n")

	found, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range found {
		rel, _ := filepath.Rel(root, f.File)
		got = append(got, rel+" "+f.Spec.String())
	}
	want := []string{
		"api/.env sqlite " + filepath.Join(root, "api/var/data.db") + " (as data)",
		"blog/wp-config.php mysql wp_shop on /run/mysqld/mysqld.sock as shop_user (password set)",
		"shop/.env.local postgres shop on 127.0.0.1:5432 as shop (password set)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(found) == 3 && found[2].Spec.Password != "from-env-local" {
		t.Errorf(".env.local did not override .env")
	}
	for _, g := range got {
		if strings.Contains(g, "from-env") || strings.Contains(g, "p@ss") {
			t.Errorf("a description shows a password: %s", g)
		}
	}
	// A deployment: current links to the release, whose .env links to the
	// shared one.
	deploy := t.TempDir()
	wd := writer(t, deploy)
	wd("shared/.env", "DB_CONNECTION=mysql\nDB_DATABASE=deployed\n")
	wd("releases/7/artisan", "")
	if err := os.Symlink(filepath.Join(deploy, "shared/.env"), filepath.Join(deploy, "releases/7/.env")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(deploy, "releases/7"), filepath.Join(deploy, "current")); err != nil {
		t.Fatal(err)
	}
	found, err = Discover(filepath.Join(deploy, "current"))
	if err != nil || len(found) != 1 || found[0].Spec.Databases[0] != "deployed" {
		t.Errorf("through links: %v %+v", err, found)
	}
	if _, err := Discover(filepath.Join(root, "missing")); err == nil {
		t.Error("no error for a missing root")
	}
}

// writer returns a helper writing files below root.
func writer(t *testing.T, root string) func(rel, data string) {
	return func(rel, data string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}
