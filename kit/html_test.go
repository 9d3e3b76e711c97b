package kit

import (
	"encoding/base64"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/internal/testenv"
)

func TestHTML(t *testing.T) {
	k := s3Kit()
	k.Host = `<script>alert("x")</script>`
	k.Password = "  <b>&amp; spaces "
	page, err := k.HTML()
	if err != nil {
		t.Fatal(err)
	}
	doc := string(page)
	for _, want := range []string{
		"s3:https://s3.example.com/backups/site1", "<td>backups</td>", "<td>site1</td>", "<td>eu-central-1</td>", testID,
		"&lt;script&gt;", `&#34;  &lt;b&gt;&amp;amp; spaces &#34;`, "ESCROWEXAMPLEKEY", "Not in this kit", "data:image/png;base64,",
		"escrow restore latest --kit kit.txt",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(doc, "<script>") || strings.Contains(doc, "<b>&amp;") {
		t.Error("the page does not escape the kit's values")
	}

	// The QR code scans back into a kit with the essentials.
	zbarimg := testenv.RequireBinary(t, "zbarimg")
	m := regexp.MustCompile(`src="data:image/png;base64,([^"]+)"`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("no QR image")
	}
	png, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(file, png, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zbarimg, "--quiet", "--raw", "-Sbinary", file).Output()
	if err != nil {
		t.Fatalf("zbarimg: %v", err)
	}
	scanned, err := Parse(out)
	if err != nil {
		t.Fatalf("the scanned QR code is no kit: %v\n%q", err, out)
	}
	if !reflect.DeepEqual(scanned, k.Essentials()) {
		t.Errorf("scanned %+v, want %+v", scanned, k.Essentials())
	}
}

func TestHTMLWithoutQR(t *testing.T) {
	k := s3Kit()
	k.Password = strings.Repeat("long ", 1000) // past a QR code's capacity
	page, err := k.HTML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(page), "data:image/png") || !strings.Contains(string(page), "long long") {
		t.Error("an oversized kit should get a page without a QR code")
	}
}
