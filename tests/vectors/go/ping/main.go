// Regenerates ../../ping-accept.jsonl: what PingSource itself accepts, and what its adapter would
// send, for the schedules and payloads below. It calls knative/eventing's own
// PingSourceSpec.Validate (the webhook's check), robfig/cron as that check parses schedules, and
// the adapter's choice between data and dataBase64, so it must be built inside a knative/eventing
// checkout with its vendor directory: `just ping-vectors PATH/TO/EVENTING` copies it there as
// cmd/heartbeats-vectors and runs it.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
)

type input struct {
	Schedule    string `json:"schedule"`
	Timezone    string `json:"timezone"`
	ContentType string `json:"content_type"`
	Data        string `json:"data"`
	DataBase64  string `json:"data_base64"`
}

type line struct {
	input
	Why      string `json:"why,omitempty"`
	Accepted bool   `json:"accepted"`
	Error    string `json:"error,omitempty"`
	// For an accepted spec: the body the adapter sends, as base64 ("" sends no data).
	Sends string `json:"sends,omitempty"`
	// For an accepted spec: the first fire after From, in UTC.
	Next string `json:"next,omitempty"`
}

// From is where "next" counts from.
const From = "2026-03-01T00:00:00Z"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: heartbeats-vectors OUT.jsonl")
		os.Exit(2)
	}
	out, err := os.Create(os.Args[1])
	check(err)
	defer out.Close()
	from, err := time.Parse(time.RFC3339, From)
	check(err)
	sink, err := apis.ParseURL("http://sink.test/")
	check(err)
	encoder := json.NewEncoder(out)
	encoder.SetEscapeHTML(false)
	for _, c := range cases() {
		spec := sourcesv1.PingSourceSpec{
			SourceSpec:  duckv1.SourceSpec{Sink: duckv1.Destination{URI: sink}},
			Schedule:    c.Schedule,
			Timezone:    c.Timezone,
			ContentType: c.ContentType,
			Data:        c.Data,
			DataBase64:  c.DataBase64,
		}
		result := line{input: c.input, Why: c.why}
		if errs := spec.Validate(context.Background()); errs != nil {
			result.Error = errs.Error()
		} else {
			result.Accepted = true
			result.Sends = base64.StdEncoding.EncodeToString(adapterData(spec))
			result.Next = next(spec, from)
		}
		check(encoder.Encode(result))
	}
}

// adapterData is the body pkg/adapter/mtping sends for spec.
func adapterData(spec sourcesv1.PingSourceSpec) []byte {
	if spec.DataBase64 != "" {
		data, _ := base64.StdEncoding.DecodeString(spec.DataBase64)
		return data
	}
	return []byte(spec.Data)
}

// next is the first fire time after from, as the adapter's cron parses the schedule.
func next(spec sourcesv1.PingSourceSpec, from time.Time) string {
	schedule := spec.Schedule
	if spec.Timezone != "" {
		schedule = "CRON_TZ=" + spec.Timezone + " " + schedule
	}
	parser := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	parsed, err := parser.Parse(schedule)
	check(err)
	return parsed.Next(from).UTC().Format(time.RFC3339)
}

type testCase struct {
	input
	why string
}

func schedule(spec, zone, why string) testCase {
	return testCase{input{Schedule: spec, Timezone: zone}, why}
}

func payload(contentType, data string, dataBase64 []byte, why string) testCase {
	b64 := ""
	if dataBase64 != nil {
		b64 = base64.StdEncoding.EncodeToString(dataBase64)
	}
	return testCase{input{Schedule: "* * * * *", ContentType: contentType, Data: data, DataBase64: b64}, why}
}

// raw gives dataBase64 as written, not as the encoding of some bytes.
func raw(contentType, dataBase64, why string) testCase {
	return testCase{input{Schedule: "* * * * *", ContentType: contentType, DataBase64: dataBase64}, why}
}

func nested(depth int) string {
	return `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
}

func cases() []testCase {
	const json = "application/json"
	return []testCase{
		schedule("@daily", "", ""),
		schedule("@daily ", "", "robfig does not trim a schedule without a zone prefix"),
		schedule(" @daily", "", ""),
		schedule("@daily ", "Europe/Berlin", "with spec.timezone robfig trims what follows CRON_TZ="),
		schedule(" @daily", "Europe/Berlin", ""),
		schedule("@hourly\t", "Europe/Berlin", ""),
		schedule("\t@weekly \t", "America/New_York", ""),
		schedule(" 30 2 * * * ", "Europe/Berlin", ""),
		schedule(" 30 2 * * * ", "", "fields are split on white space anyway"),
		schedule("0 0 * * FRİ", "", "names are folded by strings.ToLower: İ is i"),
		schedule("0 0 * * fri", "", ""),
		schedule("0 0 * * FrI", "", ""),
		schedule("0 0 * JAN-mar *", "", ""),
		schedule("0 0 * * MON-FRİ", "", ""),
		schedule("0 0 * * FRİ", "", "a combining dot after I is not a name"),
		schedule("0 0 * * friday", "", ""),
		schedule("@every 1h", "", "PingSource refuses @every"),
		schedule("@DAILY", "", "descriptors are not folded"),
		schedule("CRON_TZ=UTC @daily", "", ""),
		schedule("@daily", "Mars/Olympus", ""),
		payload("", "", nil, "no data: an event without data"),
		payload("", "", []byte("x"), "finding 11: an empty data is not given"),
		payload("", "x", []byte{}, "finding 11: an empty dataBase64 is not given"),
		payload("", "x", []byte("y"), "both given"),
		payload(json, `{"a":1}`, nil, ""),
		payload(json, ` {"a":1} `, nil, "white space around"),
		payload(json, "\n{}\t", nil, ""),
		payload(json, `null`, nil, "json.Unmarshal of null into a map succeeds"),
		payload(json, ` null `, nil, ""),
		payload(json, `[1]`, nil, "not an object"),
		payload(json, `"s"`, nil, ""),
		payload(json, `1`, nil, ""),
		payload(json, `true`, nil, ""),
		payload(json, ``, []byte(`{}`), ""),
		payload(json, `{"a":1e400}`, nil, "finding 10: overflows float64"),
		payload(json, `{"a":-1e400}`, nil, ""),
		payload(json, `{"a":[1e309]}`, nil, ""),
		payload(json, `{"a":1.7976931348623157e308}`, nil, "the largest float64"),
		payload(json, `{"a":1.7976931348623159e308}`, nil, "rounds to the largest"),
		payload(json, `{"a":1.797693134862315808e308}`, nil, "just under half an ULP above"),
		payload(json, `{"a":1e-400}`, nil, "underflow is zero, not an error"),
		payload(json, `{"a":123456789012345678901234567890}`, nil, ""),
		payload(json, nested(128), nil, ""),
		payload(json, nested(129), nil, "deeper than serde_json's default limit"),
		payload(json, nested(10000), nil, "Go's scanner allows 10,000 levels"),
		payload(json, nested(10001), nil, "finding 10: exceeded max depth"),
		payload(json, ``, []byte("{\"a\":\"\xff\xfe\"}"), "finding 10: invalid UTF-8 in a string"),
		payload(json, ``, []byte("{\"\xc3\":1}"), "invalid UTF-8 in a key"),
		payload(json, ``, []byte("{\"a\":1}\xff"), "invalid UTF-8 after the object"),
		payload(json, ``, []byte("\xef\xbb\xbf{}"), "a byte-order mark"),
		payload(json, `{"a":"\ud800"}`, nil, "a lone surrogate escape"),
		payload(json, `{"a":"\udc00\ud800"}`, nil, ""),
		payload(json, `{"a":"\u0000"}`, nil, ""),
		payload(json, "{\"a\":\"\x01\"}", nil, "a raw control character"),
		payload(json, "{\"a\":\"\x7f\"}", nil, "DEL is not a control character to JSON"),
		payload(json, `{"a":1,"a":2}`, nil, "a repeated key"),
		payload(json, `{"a":01}`, nil, ""),
		payload(json, `{"a":.5}`, nil, ""),
		payload(json, `{"a":1.}`, nil, ""),
		payload(json, `{"a":1E+2}`, nil, ""),
		payload(json, `{"a":-0}`, nil, ""),
		payload(json, `{"a":-}`, nil, ""),
		payload(json, `{"a":tru}`, nil, ""),
		payload(json, `{"a":1} x`, nil, "something after the object"),
		payload(json, `{"a":1}{}`, nil, ""),
		payload(json, `{"a":1,}`, nil, "a trailing comma"),
		payload(json, `{'a':1}`, nil, ""),
		payload(json, `{"a":"\x"}`, nil, "an unknown escape"),
		payload(json, `{"a":"\/"}`, nil, ""),
		payload(json, "{\"a\":1}\u00a0", nil, "no-break space is not JSON white space"),
		payload(json, `{`, nil, ""),
		payload("text/plain", `not json`, nil, "only application/json is checked"),
		payload("application/json; charset=utf-8", `not json`, nil, "PingSource checks the exact string only"),
		payload("Application/JSON", `not json`, nil, ""),
		payload("", `not json`, nil, ""),
		raw("", "not base64", "not base64 at all"),
		raw("", "eA", "padding is required"),
		raw("", "eB==", "the unused bits are not checked"),
		raw("", "e\r\nA==", "line breaks are skipped"),
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
