package kit

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/escrow-backup/escrow/remote/s3"
)

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("kit").Parse(pageHTML))

// QRModulePixels is the size of one QR module in the PNG. The page scales
// the image; nearest-neighbour rendering keeps the edges sharp in print.
const QRModulePixels = 8

// QR returns a PNG of the QR code carrying the kit's essentials as a compact
// kit (see Essentials), so that scanning it yields a file Parse accepts.
func (k *Kit) QR() ([]byte, error) {
	text, err := k.Essentials().Compact()
	if err != nil {
		return nil, err
	}
	q, err := qrcode.New(string(text), qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("QR code of the kit: %w", err)
	}
	return q.PNG(QRModulePixels * len(q.Bitmap()))
}

// HTML returns a printable page: the kit's fields, restore steps, the text
// kit, and the QR code of its essentials. A kit too big for a QR code (a
// very long password or session token) gets a page without one.
func (k *Kit) HTML() ([]byte, error) {
	text, err := k.MarshalText()
	if err != nil {
		return nil, err
	}
	data := struct {
		Kit      *Kit
		S3       *s3.Config
		Password string
		QR       template.URL
		Text     string
	}{Kit: k, Password: encodeValue(k.Password), Text: string(text)}
	if k.IsS3() {
		if c, err := s3.ParseURL(k.Repository); err == nil {
			data.S3 = &c
		}
	}
	if png, err := k.QR(); err == nil {
		// A data: URL from our own PNG encoder, nothing from the kit's text.
		data.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
	}
	var b bytes.Buffer
	if err := page.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render the kit page: %w", err)
	}
	return b.Bytes(), nil
}
