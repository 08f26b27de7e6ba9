// Escaping bytes vgfs did not choose (PV paths, job reasons, anything read
// from disk or a command) before they reach a terminal, a reply line, a
// view file or JSON.
//
// Invariant: the output of escape_bytes() and printable() is well-formed
// UTF-8 holding no control character (C0, DEL or C1), so it can neither
// break a `key: value` line or a reply in two, nor drive a terminal, nor
// make a JSON encoder throw. escape_bytes() is exact and reversible:
//   "\\"   one backslash
//   "\xNN" one byte (two lowercase hex digits): a C0 control (0x00-0x1f),
//          DEL (0x7f), each byte of a C1 control's encoding (U+0080-U+009F,
//          0xc2 0x80-0x9f), and every byte that is not part of a
//          well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
//          surrogates, nothing past U+10FFFF)
// and every other byte is itself; unescape_bytes() gives the bytes back.
// printable() escapes the same bytes but leaves backslashes alone, so it is
// idempotent: for messages that may hold already-escaped text.
#pragma once

#include <string>
#include <string_view>

#include "vgfs/status.h"

namespace vgfs {

std::string escape_bytes(std::string_view bytes);
std::string printable(std::string_view text);
// EINVAL on a backslash not followed by "\\" or "xNN".
Result<std::string> unescape_bytes(std::string_view text);

}  // namespace vgfs
