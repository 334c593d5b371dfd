// go_reader.go: Go encoding/json readers (standard library only).
//
// usage: go_reader IN.jsonl OUT.jsonl   (format: see py_readers.py)
//
//	go-iface    bufio.Scanner lines (LF, a trailing CR dropped), Unmarshal
//	            into interface{} (numbers are float64)
//	go-struct   the same lines into a struct with `json:"author_id"` tags:
//	            keys match exactly, else case-insensitively with Go's own
//	            folding (K/KELVIN SIGN, s/LONG S); the last match wins
//	go-decoder  json.Decoder over the whole body: a stream of values
//
// float64 ids are rendered with strconv.FormatFloat(f, 'f', -1, 64).
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"strconv"
)

type item struct {
	ID   string `json:"id"`
	Mode string `json:"mode"`
	Loc  string `json:"loc"`
	B64  string `json:"b64"`
}

type rec struct {
	S   []*string `json:"s,omitempty"`
	N   int       `json:"n,omitempty"` // 1: a value that is not an object
	Err string    `json:"err,omitempty"`
}

func wrap(s []*string) rec {
	if s == nil {
		return rec{N: 1}
	}
	return rec{S: s}
}

type result struct {
	ID   string  `json:"id"`
	R    string  `json:"r"`
	Recs []rec   `json:"recs"`
	Err  *string `json:"err"`
}

type mention struct {
	ID json.RawMessage `json:"id"` // nil when the member is missing
}

type recA struct {
	AuthorID interface{} `json:"author_id"`
}

type recAM struct {
	AuthorID interface{} `json:"author_id"`
	Mentions []mention   `json:"mentions"`
}

func render(v interface{}) *string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return nil
	}
	return &s
}

func subjects(v interface{}, loc string) []*string {
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil
	}
	out := []*string{nil}
	if a, ok := m["author_id"]; ok {
		out[0] = render(a)
	}
	if loc == "am" {
		if ms, ok := m["mentions"].([]interface{}); ok {
			for _, e := range ms {
				if em, ok := e.(map[string]interface{}); ok {
					if id, ok := em["id"]; ok {
						out = append(out, render(id))
					}
				}
			}
		}
	}
	return out
}

func structSubjects(data []byte, loc string) ([]*string, error) {
	if loc == "am" {
		var r recAM
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, err
		}
		out := []*string{render(r.AuthorID)}
		for _, m := range r.Mentions {
			if m.ID == nil {
				continue
			}
			var v interface{}
			if err := json.Unmarshal(m.ID, &v); err != nil {
				return nil, err
			}
			out = append(out, render(v))
		}
		return out, nil
	}
	var r recA
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return []*string{render(r.AuthorID)}, nil
}

func errstr(err error) string {
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func scanLines(body []byte) [][]byte {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out [][]byte
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

func blank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

func firstByte(b []byte) byte {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 {
		return 0
	}
	return t[0]
}

func main() {
	in, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	f, err := os.Create(os.Args[2])
	if err != nil {
		panic(err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, line := range bytes.Split(in, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var it item
		if err := json.Unmarshal(line, &it); err != nil {
			panic(err)
		}
		body, _ := base64.StdEncoding.DecodeString(it.B64)
		iface := result{ID: it.ID, R: "go-iface", Recs: []rec{}}
		strct := result{ID: it.ID, R: "go-struct", Recs: []rec{}}
		dec := result{ID: it.ID, R: "go-decoder", Recs: []rec{}}
		if it.Mode == "lines" {
			for _, l := range scanLines(body) {
				if blank(l) {
					continue
				}
				var v interface{}
				if err := json.Unmarshal(l, &v); err != nil {
					iface.Recs = append(iface.Recs, rec{Err: errstr(err)})
				} else {
					iface.Recs = append(iface.Recs, wrap(subjects(v, it.Loc)))
				}
				if s, err := structSubjects(l, it.Loc); err != nil {
					strct.Recs = append(strct.Recs, rec{Err: errstr(err)})
				} else {
					strct.Recs = append(strct.Recs, rec{S: s})
				}
			}
		} else {
			var v interface{}
			if err := json.Unmarshal(body, &v); err != nil {
				e := errstr(err)
				iface.Err = &e
			} else if arr, ok := v.([]interface{}); ok {
				for _, x := range arr {
					iface.Recs = append(iface.Recs, wrap(subjects(x, it.Loc)))
				}
			} else {
				iface.Recs = append(iface.Recs, wrap(subjects(v, it.Loc)))
			}
			if firstByte(body) == '[' {
				var raws []json.RawMessage
				if err := json.Unmarshal(body, &raws); err != nil {
					e := errstr(err)
					strct.Err = &e
				} else {
					for _, r := range raws {
						if s, err := structSubjects(r, it.Loc); err != nil {
							strct.Recs = append(strct.Recs, rec{Err: errstr(err)})
						} else {
							strct.Recs = append(strct.Recs, rec{S: s})
						}
					}
				}
			} else if s, err := structSubjects(body, it.Loc); err != nil {
				e := errstr(err)
				strct.Err = &e
			} else {
				strct.Recs = append(strct.Recs, rec{S: s})
			}
		}
		d := json.NewDecoder(bytes.NewReader(body))
		for {
			var v interface{}
			err := d.Decode(&v)
			if err == io.EOF {
				break
			}
			if err != nil {
				e := errstr(err)
				dec.Err = &e
				break
			}
			if arr, ok := v.([]interface{}); ok && it.Mode == "doc" {
				for _, x := range arr {
					dec.Recs = append(dec.Recs, wrap(subjects(x, it.Loc)))
				}
			} else {
				dec.Recs = append(dec.Recs, wrap(subjects(v, it.Loc)))
			}
		}
		enc.Encode(iface)
		enc.Encode(strct)
		enc.Encode(dec)
	}
	w.Flush()
	f.Close()
}
