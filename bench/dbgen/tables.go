package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// table is one of the site's tables. Row id's content depends only on the
// seed, the table, the id and the version (0 when inserted, the change
// round after an update), so any round can regenerate any row.
type table struct {
	name   string
	create string
	cols   string
	stream uint64
	// share of the dump's bytes and approximate bytes per row in a dump,
	// which together give the row count for a dump size.
	share, rowBytes float64
	row             func(g *gen, t *table, id int) []string
	update          func(g *gen, t *table, id, round int) string // SET clause
}

var tables = []*table{
	{
		name: "posts", stream: 1, share: 0.46, rowBytes: 7300,
		create: "CREATE TABLE posts (\n  id bigint unsigned NOT NULL AUTO_INCREMENT,\n  author_id int unsigned NOT NULL,\n" +
			"  created_at datetime NOT NULL,\n  modified_at datetime NOT NULL,\n  title varchar(255) NOT NULL,\n" +
			"  slug varchar(200) NOT NULL,\n  status varchar(20) NOT NULL,\n  excerpt text NOT NULL,\n  body longtext NOT NULL,\n" +
			"  PRIMARY KEY (id),\n  KEY slug (slug),\n  KEY status_date (status, created_at)\n" +
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
		cols:   "id, author_id, created_at, modified_at, title, slug, status, excerpt, body",
		row:    postRow,
		update: postUpdate,
	},
	{
		name: "comments", stream: 2, share: 0.33, rowBytes: 600,
		create: "CREATE TABLE comments (\n  id bigint unsigned NOT NULL AUTO_INCREMENT,\n  post_id bigint unsigned NOT NULL,\n" +
			"  author_name varchar(250) NOT NULL,\n  author_email varchar(100) NOT NULL,\n  author_ip varchar(100) NOT NULL,\n" +
			"  created_at datetime NOT NULL,\n  approved varchar(20) NOT NULL,\n  user_agent varchar(255) NOT NULL,\n" +
			"  body text NOT NULL,\n  PRIMARY KEY (id),\n  KEY post_id (post_id),\n  KEY approved_date (approved, created_at)\n" +
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
		cols:   "id, post_id, author_name, author_email, author_ip, created_at, approved, user_agent, body",
		row:    commentRow,
		update: commentUpdate,
	},
	{
		name: "orders", stream: 3, share: 0.18, rowBytes: 390,
		create: "CREATE TABLE orders (\n  id bigint unsigned NOT NULL AUTO_INCREMENT,\n  customer_name varchar(200) NOT NULL,\n" +
			"  customer_email varchar(200) NOT NULL,\n  created_at datetime NOT NULL,\n  modified_at datetime NOT NULL,\n" +
			"  status varchar(20) NOT NULL,\n  currency char(3) NOT NULL,\n  total decimal(12,2) NOT NULL,\n" +
			"  billing_address text NOT NULL,\n  items text NOT NULL,\n  note text NOT NULL,\n" +
			"  PRIMARY KEY (id),\n  KEY customer_email (customer_email),\n  KEY status_date (status, created_at)\n" +
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
		cols:   "id, customer_name, customer_email, created_at, modified_at, status, currency, total, billing_address, items, note",
		row:    orderRow,
		update: orderUpdate,
	},
	{
		name: "options", stream: 4, share: 0.03, rowBytes: 1220,
		create: "CREATE TABLE options (\n  option_id bigint unsigned NOT NULL AUTO_INCREMENT,\n" +
			"  option_name varchar(191) NOT NULL,\n  option_value longtext NOT NULL,\n  autoload varchar(20) NOT NULL DEFAULT 'yes',\n" +
			"  PRIMARY KEY (option_id),\n  UNIQUE KEY option_name (option_name),\n  KEY autoload (autoload)\n" +
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
		cols:   "option_id, option_name, option_value, autoload",
		row:    optionRow,
		update: optionUpdate,
	},
}

// gen holds what every row depends on.
type gen struct {
	seed    uint64
	initial map[string]int // rows before any change round
	base    time.Time
	step    map[string]time.Duration // created_at spacing of consecutive ids
}

func (g *gen) rand(t *table, id, version int) *rand.Rand {
	return rand.New(rand.NewPCG(g.seed^t.stream<<56, uint64(id)<<16|uint64(version)))
}

func (g *gen) created(t string, id int) time.Time {
	return g.base.Add(time.Duration(id)*g.step[t] + time.Duration(id*7919%3600)*time.Second)
}

// now is when round's changes happen: a day after the previous round,
// after the last initial row.
func (g *gen) now(round int) time.Time {
	return g.base.Add(8*365*24*time.Hour + time.Duration(round)*24*time.Hour)
}

func sqlTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// ------------------------------------------------------------------ posts

type post struct {
	author              int
	title, status       string
	excerpt             string
	paragraphs          []string
	created             time.Time
	headings, linkEvery int
}

func (g *gen) post(t *table, id int) post {
	r := g.rand(t, id, 0)
	p := post{author: between(r, 1, 40), title: title(r), created: g.created("posts", id)}
	p.status = pick(r, []string{"publish", "publish", "publish", "publish", "draft", "private"})
	n := between(r, 3, 16)
	for range n {
		p.paragraphs = append(p.paragraphs, paragraph(r, logNormalish(r, 480)))
	}
	p.excerpt = paragraph(r, 160)
	p.headings = between(r, 2, 5)
	p.linkEvery = between(r, 2, 6)
	return p
}

func (p post) body(id int) string {
	var b strings.Builder
	for i, par := range p.paragraphs {
		if i > 0 && i%p.headings == 0 {
			fmt.Fprintf(&b, "<!-- wp:heading -->\n<h2>%s</h2>\n<!-- /wp:heading -->\n\n", strings.SplitN(par, ".", 2)[0])
		}
		b.WriteString("<!-- wp:paragraph -->\n<p>")
		if i%p.linkEvery == 1 {
			// Link an earlier post, as posts do.
			cut := strings.IndexByte(par, ' ')
			fmt.Fprintf(&b, `<a href="https://www.example.com/?p=%d">%s</a>%s`, 1+(id*31+i)%max(id, 1), par[:cut], par[cut:])
		} else {
			b.WriteString(par)
		}
		b.WriteString("</p>\n<!-- /wp:paragraph -->\n\n")
	}
	return b.String()
}

func postRow(g *gen, t *table, id int) []string {
	p := g.post(t, id)
	return []string{num(id), num(p.author), str(sqlTime(p.created)), str(sqlTime(p.created.Add(36 * time.Hour))),
		str(p.title), str(slug(p.title, id)), str(p.status), str(p.excerpt), str(p.body(id))}
}

// postUpdate rewrites one paragraph of the post, as an author's edit does.
func postUpdate(g *gen, t *table, id, round int) string {
	p := g.post(t, id)
	r := g.rand(t, id, round)
	i := r.IntN(len(p.paragraphs))
	p.paragraphs[i] = paragraph(r, len(p.paragraphs[i])+between(r, -80, 200))
	return fmt.Sprintf("body = %s, modified_at = %s", str(p.body(id)), str(sqlTime(g.now(round))))
}

// --------------------------------------------------------------- comments

func commentRow(g *gen, t *table, id int) []string {
	r := g.rand(t, id, 0)
	name, email := person(r)
	postID := max(1, int(float64(g.initial["posts"])*float64(id)/float64(g.initial["comments"]))-r.IntN(20))
	body := paragraph(r, logNormalish(r, 260))
	if r.IntN(4) == 0 {
		body += pick(r, smileys)
	}
	if r.IntN(5) == 0 {
		body += "\n\n" + paragraph(r, logNormalish(r, 120))
	}
	approved := pick(r, []string{"1", "1", "1", "1", "1", "1", "0", "spam"})
	return []string{num(id), num(postID), str(name), str(email), str(ip(r)),
		str(sqlTime(g.created("comments", id))), str(approved), str(pick(r, agents)), str(body)}
}

// commentUpdate approves, marks as spam, or edits a comment.
func commentUpdate(g *gen, t *table, id, round int) string {
	r := g.rand(t, id, round)
	switch r.IntN(3) {
	case 0:
		return "approved = '1'"
	case 1:
		return "approved = 'trash'"
	}
	old := commentRow(g, t, id)[8]
	return "body = " + old[:len(old)-1] + str(" Edit: " + paragraph(r, 60))[1:]
}

// ----------------------------------------------------------------- orders

var orderStatus = []string{"completed", "completed", "completed", "completed", "processing", "on-hold", "cancelled", "refunded"}

func orderRow(g *gen, t *table, id int) []string {
	r := g.rand(t, id, 0)
	name, email := person(r)
	created := g.created("orders", id)
	var items []string
	total := 0
	for range between(r, 1, 4) {
		qty, cents := between(r, 1, 3), between(r, 499, 12999)
		total += qty * cents
		items = append(items, fmt.Sprintf(`{"sku":"%s-%04d","name":"%s %s %s","qty":%d,"price":"%d.%02d"}`,
			strings.ToUpper(pick(r, products)[:3]), r.IntN(10000), strings.ToUpper(pick(r, colors)[:1])+pick(r, colors)[1:],
			pick(r, materials), pick(r, products), qty, cents/100, cents%100))
	}
	total += 495
	note := ""
	if r.IntN(4) == 0 {
		note = paragraph(r, 80)
	}
	return []string{num(id), str(name), str(email), str(sqlTime(created)), str(sqlTime(created.Add(50 * time.Hour))),
		str(pick(r, orderStatus)), str(pick(r, []string{"EUR", "USD", "GBP"})), fmt.Sprintf("%d.%02d", total/100, total%100),
		str(address(r, name)), str("[" + strings.Join(items, ",") + "]"), str(note)}
}

// orderUpdate moves an order on (or back), as the shop's status changes do.
func orderUpdate(g *gen, t *table, id, round int) string {
	r := g.rand(t, id, round)
	return fmt.Sprintf("status = %s, modified_at = %s", str(pick(r, []string{"completed", "refunded", "cancelled", "processing"})),
		str(sqlTime(g.now(round))))
}

// ---------------------------------------------------------------- options

var optionKinds = []string{"widget_text", "theme_mods", "_transient_feed", "_site_transient_update", "plugin_settings", "cron_jobs", "wpseo_titles", "sidebars"}

func optionRow(g *gen, t *table, id int) []string {
	r := g.rand(t, id, 0)
	kind := pick(r, optionKinds)
	autoload := "yes"
	if strings.HasPrefix(kind, "_") {
		autoload = "no"
	}
	return []string{num(id), str(fmt.Sprintf("%s_%d", kind, id)), str(phpSerialized(r, logNormalish(r, 900))), str(autoload)}
}

func optionUpdate(g *gen, t *table, id, round int) string {
	r := g.rand(t, id, round)
	return "option_value = " + str(phpSerialized(r, logNormalish(r, 900)))
}

// phpSerialized returns a PHP serialized array of about size bytes, as
// WordPress stores its options.
func phpSerialized(r *rand.Rand, size int) string {
	var items []string
	n := 0
	for n < size {
		k := fmt.Sprintf("%s_%s", word(r), word(r))
		var v string
		switch r.IntN(3) {
		case 0:
			v = fmt.Sprintf("i:%d;", r.IntN(100000))
		case 1:
			v = "b:" + fmt.Sprint(r.IntN(2)) + ";"
		default:
			s := paragraph(r, between(r, 10, 200))
			v = fmt.Sprintf("s:%d:\"%s\";", len(s), s)
		}
		item := fmt.Sprintf("s:%d:\"%s\";%s", len(k), k, v)
		items = append(items, item)
		n += len(item)
	}
	return fmt.Sprintf("a:%d:{%s}", len(items), strings.Join(items, ""))
}

// -------------------------------------------------------------------- SQL

func num(n int) string { return fmt.Sprint(n) }

// str quotes s as a MariaDB string literal.
func str(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
