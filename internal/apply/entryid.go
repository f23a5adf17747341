package apply

import "google.golang.org/protobuf/encoding/protowire"

// Field numbers of the request ID in an encoded pb.InternalRaftRequest: its
// own ID (1) and its header's (100), whose ID is field 1 of RequestHeader.
const (
	fieldID     protowire.Number = 1
	fieldHeader protowire.Number = 100
)

// entryID reads the request ID of an encoded pb.InternalRaftRequest without
// decoding the request: the header's ID if set, else the request's own, as
// the applier picks it from a decoded request. It only walks the top-level
// fields (each payload is skipped by its length), so a put or a txn costs a
// few varints. ok is false for bytes that are not a well-formed message;
// the caller then decodes them and reports the error.
func entryID(data []byte) (id uint64, ok bool) {
	var own, hdr uint64
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return 0, false
		}
		data = data[n:]
		switch {
		case num == fieldID && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(data)
			if m < 0 {
				return 0, false
			}
			own, n = v, m
		case num == fieldHeader && typ == protowire.BytesType:
			b, m := protowire.ConsumeBytes(data)
			if m < 0 {
				return 0, false
			}
			// Repeated occurrences of a message field merge: a later ID wins.
			if v, found, good := headerID(b); !good {
				return 0, false
			} else if found {
				hdr = v
			}
			n = m
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
			if n < 0 {
				return 0, false
			}
		}
		data = data[n:]
	}
	if hdr != 0 {
		return hdr, true
	}
	return own, true
}

// headerID reads field 1 (ID) of an encoded pb.RequestHeader.
func headerID(data []byte) (id uint64, found, ok bool) {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return 0, false, false
		}
		data = data[n:]
		if num == fieldID && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(data)
			if m < 0 {
				return 0, false, false
			}
			id, found, n = v, true, m
		} else if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
			return 0, false, false
		}
		data = data[n:]
	}
	return id, found, true
}
