package recording

// The file format of one recording, <Dir>/<id>.ghrec. All integers are
// big-endian.
//
//	header  = magic "GHREC\x00" | version (1 byte, 1) | idLen (1 byte) | id | metaHash (32 bytes)
//	record  = chunk | seal
//	chunk   = 'C' | index (u32, from 1) | len (u32) | ciphertext (len bytes) | chain (32 bytes)
//	seal    = 'S' | n (u32) | end (i64 unix nanoseconds) | chain_n (32 bytes) | signature (64 bytes)
//
// The header holds no personal data: the recording ID and metaHash, the
// SHA-256 of chunk 1's ciphertext, which is the encrypted asciicast header
// (user, target, login, session ID, start). Every chunk is its own age
// encryption (X25519, to the deployment's recording key plus the configured
// reviewer recipients) of a batch of lines written at one flush: asciicast
// v2 header (chunk 1 only), asciicast v2 event lines ([t,"o",data],
// [t,"r","WxH"], [t,"m",label]) and structured events
// ({"gatehouse_event":{...}}). A crash therefore loses at most the batch
// not flushed yet, and every chunk before it stays decryptable.
//
// The hash chain binds the chunks to the header and to their order:
//
//	h_0 = SHA-256(header)
//	h_i = SHA-256(h_{i-1} | SHA-256(ciphertext_i) | u32 i)
//
// and each chunk stores its h_i, so a reader names the first chunk that
// breaks the chain. The seal is an Ed25519 signature (the seal key in Config.Keys)
// over sealMessage(id, metaHash, h_n, n, end); the SHA-256 of the whole seal
// record is the seal hash, kept in the index (Meta.Seal) and in the audit
// log (type recording.seal).

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

const (
	magic         = "GHREC\x00"
	formatVersion = 1
	hashLen       = sha256.Size
	tagChunk      = 'C'
	tagSeal       = 'S'
	// maxChunk caps a chunk's ciphertext on read, so a hostile file cannot
	// make a reader allocate without bound. The writer flushes at
	// flushBytes of plaintext, far below it.
	maxChunk = 4 << 20
	// maxIDLen bounds recording IDs (they name files and store keys).
	maxIDLen  = 64
	sealLen   = 1 + 4 + 8 + hashLen + ed25519.SignatureSize
	sealLabel = "gatehouse recording seal v1\x00"
)

var (
	errTruncated = errors.New("truncated")
	errNotRec    = errors.New("not a gatehouse recording")
)

// header is the plaintext start of a recording file.
type header struct {
	id       string
	metaHash [hashLen]byte
}

func (h header) marshal() []byte {
	b := make([]byte, 0, len(magic)+2+len(h.id)+hashLen)
	b = append(b, magic...)
	b = append(b, formatVersion, byte(len(h.id)))
	b = append(b, h.id...)
	return append(b, h.metaHash[:]...)
}

// chainNext computes h_i from h_{i-1}, the ciphertext of chunk i and i.
func chainNext(prev [hashLen]byte, ct []byte, i uint32) [hashLen]byte {
	ch := sha256.Sum256(ct)
	var b [2*hashLen + 4]byte
	copy(b[:], prev[:])
	copy(b[hashLen:], ch[:])
	binary.BigEndian.PutUint32(b[2*hashLen:], i)
	return sha256.Sum256(b[:])
}

// chunkHeaderLen is the size of a chunk record's header: tag, index,
// ciphertext length.
const chunkHeaderLen = 9

// marshalChunk encodes one chunk record: header, ciphertext, chain hash.
func marshalChunk(i uint32, ct []byte, chain [hashLen]byte) []byte {
	b := make([]byte, chunkHeaderLen, chunkHeaderLen+len(ct)+hashLen)
	putChunkHeader(b, i, len(ct))
	b = append(b, ct...)
	return append(b, chain[:]...)
}

// putChunkHeader fills in the first chunkHeaderLen bytes of a record.
func putChunkHeader(b []byte, i uint32, ctLen int) {
	b[0] = tagChunk
	binary.BigEndian.PutUint32(b[1:5], i)
	binary.BigEndian.PutUint32(b[5:9], uint32(ctLen))
}

// seal is the closing record.
type seal struct {
	n     uint32
	end   time.Time
	chain [hashLen]byte
	sig   []byte
	raw   []byte // the encoded record, whose SHA-256 is the seal hash
}

// sealMessage is what the Ed25519 signature covers.
func sealMessage(id string, metaHash, chain [hashLen]byte, n uint32, end time.Time) []byte {
	b := make([]byte, 0, len(sealLabel)+1+len(id)+2*hashLen+12)
	b = append(b, sealLabel...)
	b = append(b, byte(len(id)))
	b = append(b, id...)
	b = append(b, metaHash[:]...)
	b = append(b, chain[:]...)
	b = binary.BigEndian.AppendUint32(b, n)
	return binary.BigEndian.AppendUint64(b, uint64(end.UnixNano()))
}

// marshalSeal signs and encodes the seal record.
func marshalSeal(key ed25519.PrivateKey, h header, chain [hashLen]byte, n uint32, end time.Time) []byte {
	sig := ed25519.Sign(key, sealMessage(h.id, h.metaHash, chain, n, end))
	b := make([]byte, 0, sealLen)
	b = append(b, tagSeal)
	b = binary.BigEndian.AppendUint32(b, n)
	b = binary.BigEndian.AppendUint64(b, uint64(end.UnixNano()))
	b = append(b, chain[:]...)
	return append(b, sig...)
}

// scanner reads a recording file record by record, holding at most one
// chunk in memory.
type scanner struct {
	r       *bufio.Reader
	hdr     header
	hdrHash [hashLen]byte
}

// chunkRec is one chunk as read.
type chunkRec struct {
	index uint32
	ct    []byte
	chain [hashLen]byte // as stored
}

// newScanner reads and checks the header.
func newScanner(r io.Reader) (*scanner, error) {
	br := bufio.NewReader(r)
	pre := make([]byte, len(magic)+2)
	if _, err := io.ReadFull(br, pre); err != nil {
		return nil, errNotRec
	}
	if string(pre[:len(magic)]) != magic {
		return nil, errNotRec
	}
	if pre[len(magic)] != formatVersion {
		return nil, fmt.Errorf("unsupported recording format version %d", pre[len(magic)])
	}
	idLen := int(pre[len(magic)+1])
	if idLen == 0 || idLen > maxIDLen {
		return nil, errNotRec
	}
	rest := make([]byte, idLen+hashLen)
	if _, err := io.ReadFull(br, rest); err != nil {
		return nil, errNotRec
	}
	s := &scanner{r: br}
	s.hdr.id = string(rest[:idLen])
	copy(s.hdr.metaHash[:], rest[idLen:])
	s.hdrHash = sha256.Sum256(append(pre, rest...))
	return s, nil
}

// next returns the next record: a *chunkRec or a *seal. It returns io.EOF
// at a clean end of file, errTruncated when the file ends inside a record,
// and another error for a record that cannot be a valid one.
func (s *scanner) next() (any, error) {
	tag, err := s.r.ReadByte()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	switch tag {
	case tagChunk:
		var h [8]byte
		if _, err := io.ReadFull(s.r, h[:]); err != nil {
			return nil, errTruncated
		}
		c := &chunkRec{index: binary.BigEndian.Uint32(h[:4])}
		n := binary.BigEndian.Uint32(h[4:])
		if n > maxChunk {
			return nil, fmt.Errorf("chunk length %d exceeds the limit", n)
		}
		// CopyN grows the buffer only as data arrives, so a lying length
		// at the end of a short file costs nothing.
		var buf bytes.Buffer
		if _, err := io.CopyN(&buf, s.r, int64(n)); err != nil {
			return nil, errTruncated
		}
		c.ct = buf.Bytes()
		if _, err := io.ReadFull(s.r, c.chain[:]); err != nil {
			return nil, errTruncated
		}
		return c, nil
	case tagSeal:
		raw := make([]byte, sealLen)
		raw[0] = tagSeal
		if _, err := io.ReadFull(s.r, raw[1:]); err != nil {
			return nil, errTruncated
		}
		sl := &seal{raw: raw, n: binary.BigEndian.Uint32(raw[1:5])}
		sl.end = time.Unix(0, int64(binary.BigEndian.Uint64(raw[5:13]))).UTC()
		copy(sl.chain[:], raw[13:13+hashLen])
		sl.sig = raw[13+hashLen:]
		return sl, nil
	default:
		return nil, fmt.Errorf("unknown record type 0x%02x", tag)
	}
}
