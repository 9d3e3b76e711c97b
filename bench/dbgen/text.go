package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// The vocabulary is common English, ordered roughly by frequency: words are
// drawn with Zipf-like weights (rank r has weight 1/(r+8)), so the text has
// the skew of real prose and compresses about as well (3 to 4 times).
var vocabulary = strings.Fields(`
the of and to a in is it you that he was for on are with as I his they be at one
have this from or had by not word but what some we can out other were all there
when up use your how said an each she which do their time if will way about many
then them write would like so these her long make thing see him two has look more
day could go come did number sound no most people my over know water than call
first who may down side been now find any new work part take get place made live
where after back little only round man year came show every good me give our under
name very through just form sentence great think say help low line differ turn cause
much mean before move right boy old too same tell does set three want air well also
play small end put home read hand port large spell add even land here must big high
such follow act why ask men change went light kind off need house picture try us again
animal point mother world near build self earth father head stand own page should
country found answer school grow study still learn plant cover food sun four between
state keep eye never last let thought city tree cross farm hard start might story saw
far sea draw left late run don't while press close night real life few north open seem
together next white children begin got walk example ease paper group always music those
both mark often letter until mile river car feet care second book carry took science
eat room friend began idea fish mountain stop once base hear horse cut sure watch color
face wood main enough plain girl usual young ready above ever red list though feel talk
bird soon body dog family direct pose leave song measure door product black short
numeral class wind question happen complete ship area half rock order fire south
problem piece told knew pass since top whole king space heard best hour better true
during hundred five remember step early hold west ground interest reach fast verb sing
listen six table travel less morning ten simple several vowel toward war lay against
pattern slow center love person money serve appear road map rain rule govern pull cold
notice voice unit power town fine certain fly fall lead cry dark machine note wait plan
figure star box noun field rest correct able pound done beauty drive stood contain
front teach week final gave green oh quick develop ocean warm free minute strong
special mind behind clear tail produce fact street inch multiply nothing course stay
wheel full force blue object decide surface deep moon island foot system busy test
record boat common gold possible plane stead dry wonder laugh thousand ago ran check
game shape equate hot miss brought heat snow tire bring yes distant fill east paint
language among garden recipe kitchen coffee bread butter cheese winter summer spring
autumn holiday weekend review shipping delivery website customer price quality fabric
cotton leather wooden handmade vintage organic local market season harvest guide
tutorial update release feature support install theme plugin photo gallery camera
lens bicycle repair engine battery charger pocket wallet jacket sweater boots garden's
it's isn't we're you'll café naïve résumé façade jalapeño
`)

var (
	firstNames = strings.Fields(`James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth
William Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa
Anthony Betty Mark Margaret Paul Sandra Steven Ashley Andrew Emily Joshua Donna Kevin Michelle Brian
Carol George Amanda Timothy Melissa Ronald Deborah José Zoë Jürgen Chloé Søren Björn Anaïs Mateo
Priya Wei Aiko Olumide Fatima Lars Ingrid Pierre Camille Luca Giulia Hannah Noah Olivia Liam Emma`)
	lastNames = strings.Fields(`Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez
Martinez Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez
Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott
Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts
Müller Schmidt Dubois Lefèvre Rossi Bianchi Kowalski Novák Andersen Johansson O'Brien Okafor Tanaka Chen`)
	domains   = strings.Fields(`gmail.com yahoo.com outlook.com hotmail.com icloud.com proton.me gmx.de web.de orange.fr example.org`)
	cities    = strings.Fields(`Springfield Riverside Fairview Madison Georgetown Clinton Salem Arlington Ashland Dover Oxford Milton Newport Bristol Lyon Leipzig Porto Ghent`)
	streets   = strings.Fields(`Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Church Mill River Station Bridge Market`)
	colors    = strings.Fields(`black white navy red olive grey sand forest burgundy mustard teal charcoal`)
	materials = strings.Fields(`cotton linen wool leather canvas denim oak walnut ceramic steel bamboo`)
	products  = strings.Fields(`shirt scarf mug notebook backpack wallet lamp chair tote apron blanket candle teapot planter belt cap`)
	agents    = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
	}
	smileys = []string{" :)", " 🙂", " 👍", "!!", " 😂", ""}
)

// wordCDF holds the cumulative Zipf-like weights of the vocabulary.
var wordCDF = func() []float64 {
	cdf := make([]float64, len(vocabulary))
	sum := 0.0
	for i := range vocabulary {
		sum += 1 / float64(i+8)
		cdf[i] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	return cdf
}()

func word(r *rand.Rand) string {
	return vocabulary[sort.SearchFloat64s(wordCDF, r.Float64())]
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// between returns an int in [lo, hi].
func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }

// logNormalish returns a size around mid, rarely below mid/4 or above 4*mid,
// as the lengths of posts and comments are spread.
func logNormalish(r *rand.Rand, mid float64) int {
	return int(math.Max(1, mid*math.Exp(0.6*r.NormFloat64())))
}

// sentence appends one sentence of 5 to 24 words.
func sentence(b *strings.Builder, r *rand.Rand) {
	n := between(r, 5, 24)
	for i := range n {
		w := word(r)
		if i == 0 {
			if w == "I" || w == "" {
				w = "it"
			}
			w = strings.ToUpper(w[:1]) + w[1:]
			b.WriteString(w)
			continue
		}
		b.WriteByte(' ')
		b.WriteString(w)
		if i < n-1 && r.IntN(12) == 0 {
			b.WriteByte(',')
		}
	}
	switch r.IntN(14) {
	case 0:
		b.WriteByte('?')
	case 1:
		b.WriteByte('!')
	default:
		b.WriteByte('.')
	}
}

// paragraph returns about size bytes of sentences.
func paragraph(r *rand.Rand, size int) string {
	var b strings.Builder
	for b.Len() < size {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		sentence(&b, r)
	}
	return b.String()
}

// title returns a headline of 3 to 9 words.
func title(r *rand.Rand) string {
	n := between(r, 3, 9)
	ws := make([]string, n)
	for i := range ws {
		w := word(r)
		if len(w) > 3 || i == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		ws[i] = w
	}
	return strings.Join(ws, " ")
}

func slug(title string, id int) string {
	s := strings.ToLower(title)
	s = strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			return c
		}
		return '-'
	}, s)
	return fmt.Sprintf("%s-%d", strings.Trim(s, "-"), id)
}

func person(r *rand.Rand) (name, email string) {
	f, l := pick(r, firstNames), pick(r, lastNames)
	local := strings.ToLower(strings.Map(func(c rune) rune {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
			return c
		}
		return -1
	}, f+"."+l))
	if r.IntN(2) == 0 {
		local += fmt.Sprint(r.IntN(100))
	}
	return f + " " + l, local + "@" + pick(r, domains)
}

func address(r *rand.Rand, name string) string {
	return fmt.Sprintf("%s\n%d %s Street\n%s %05d\n%s", name, between(r, 1, 2400), pick(r, streets),
		pick(r, cities), r.IntN(100000), pick(r, []string{"US", "GB", "DE", "FR", "NL", "PT", "BE", "CA"}))
}

func ip(r *rand.Rand) string {
	if r.IntN(5) == 0 {
		return fmt.Sprintf("2001:db8:%x:%x::%x", r.IntN(65536), r.IntN(65536), r.IntN(65536))
	}
	return fmt.Sprintf("%d.%d.%d.%d", between(r, 1, 223), r.IntN(256), r.IntN(256), between(r, 1, 254))
}
