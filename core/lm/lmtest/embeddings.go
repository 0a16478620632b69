package lmtest

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultEmbeddingDims is the length of embedding vectors when a request
// gives no "dimensions".
const DefaultEmbeddingDims = 64

// Bounds on embeddings requests.
const (
	maxEmbeddingDims   = 4096
	maxEmbeddingInputs = 2048
)

type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int            `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// inputs reads "input": a string or an array of strings.
func (req *embeddingsRequest) inputs() ([]string, error) {
	var one string
	if err := json.Unmarshal(req.Input, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(req.Input, &many); err != nil {
		return nil, errors.New("input: must be a string or an array of strings (token arrays are not supported by the simulator)")
	}
	if len(many) == 0 {
		return nil, errors.New("input: must not be empty")
	}
	if len(many) > maxEmbeddingInputs {
		return nil, fmt.Errorf("input: more than %d texts", maxEmbeddingInputs)
	}
	return many, nil
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	markModel(w)
	rec := RecordedRequest{Path: r.URL.Path, Rule: -1, Start: time.Now()}
	defer func() { s.record(rec) }()
	s.count(func(st *Stats) { st.Requests++ })
	if !s.enter(w) {
		rec.Status = http.StatusServiceUnavailable
		return
	}
	defer s.leave()
	var req embeddingsRequest
	if status := s.decodeBody(w, r, &req); status != 0 {
		rec.Status = status
		return
	}
	rec.Model = req.Model
	texts, err := req.inputs()
	dims := DefaultEmbeddingDims
	if err == nil && req.Dimensions != nil {
		dims = *req.Dimensions
		if dims < 1 || dims > maxEmbeddingDims {
			err = fmt.Errorf("dimensions: %d is outside [1, %d]", dims, maxEmbeddingDims)
		}
	}
	if err == nil && req.Model == "" {
		err = errors.New("model: required")
	}
	if err == nil && req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		err = fmt.Errorf("encoding_format: %q is not float or base64", req.EncodingFormat)
	}
	rec.Input = texts
	if err != nil {
		s.reject(w, http.StatusBadRequest, err.Error())
		rec.Status = http.StatusBadRequest
		return
	}
	// Embeddings draw no fault that spoils a response.
	if _, ok := s.injectFault(w, r, &rec, false, false, nil); !ok {
		return
	}
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	resp := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: req.Model}
	chars := 0
	for i, t := range texts {
		chars += utf8.RuneCountInString(t)
		v := embed(t, dims, uint64(s.cfg.Seed))
		var e any = v
		if req.EncodingFormat == "base64" {
			e = base64Floats(v)
		}
		resp.Data = append(resp.Data, item{Object: "embedding", Index: i, Embedding: e})
	}
	resp.Usage.PromptTokens = tokens(chars)
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	s.count(func(st *Stats) {
		st.Embeddings++
		st.PromptTokens += int64(resp.Usage.PromptTokens)
	})
	rec.Status = http.StatusOK
	writeJSON(w, http.StatusOK, resp)
}

// embed is a hashed bag of words: each lower-cased word adds ±1 to one
// dimension chosen by its hash (seeded), and the vector is scaled to unit
// length. Texts sharing words have a positive cosine similarity, which is
// enough for nearest-neighbour code to behave sensibly; it carries no
// meaning beyond word overlap.
func embed(text string, dims int, seed uint64) []float64 {
	v := make([]float64, dims)
	var seedBytes [8]byte
	binary.LittleEndian.PutUint64(seedBytes[:], seed)
	for _, word := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		h := fnv.New64a()
		h.Write(seedBytes[:])
		h.Write([]byte(word))
		x := mix64(h.Sum64())
		sign := 1.0
		if x&1 == 1 {
			sign = -1
		}
		v[(x>>1)%uint64(dims)] += sign
	}
	var norm float64
	for _, x := range v {
		norm += x * x
	}
	if norm == 0 {
		v[0] = 1
		return v
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] /= norm
	}
	return v
}

// base64Floats encodes a vector as OpenAI's base64 format: little-endian
// float32s.
func base64Floats(v []float64) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(x)))
	}
	return base64.StdEncoding.EncodeToString(b)
}
