// Parser and emitter of LVM2's metadata text (include/vgfs/lvm2_config.h,
// docs/lvm2.md "Text"). A small recursive-descent parser over the bytes; the
// tokens follow libdm's tokenizer (libdm/libdm-config.c), read to learn.
#include "vgfs/lvm2_config.h"

#include <fmt/format.h>

#include <algorithm>

namespace vgfs::lvm2 {

namespace {

// A hostile text of tiny items could make the tree many times its own size:
// no text LVM2 writes comes near this many keys and list elements.
constexpr size_t kMaxItems = size_t{1} << 20;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
// Bytes that end a bare word (a key or an unquoted value).
bool ends_word(char c) {
  return is_space(c) || c == '#' || c == '=' || c == '{' || c == '}' || c == '[' || c == ']' || c == ',' ||
         c == '"' || c == '\'';
}

class Parser {
 public:
  // stop_keys not empty: stop once the first section holds all of them.
  Parser(std::string_view text, std::string_view origin, std::initializer_list<std::string_view> stop_keys = {})
      : text_(text), origin_(origin), stop_keys_(stop_keys) {}

  Result<ConfigTree> file() {
    ConfigTree tree;
    for (;;) {
      skip_space();
      if (at_end()) {
        VGFS_RETURN_IF_ERROR(check_unique(tree.top));
        return tree;
      }
      if (peek() == '}') return error("a '}' without a section to close");
      VGFS_RETURN_IF_ERROR(entry(&tree.top, 1));
      if (stopped_) return tree;
    }
  }

 private:
  bool at_end() const { return pos_ >= text_.size(); }
  // '\0' at the end of the text (a NUL ends the text too), so an error
  // message may show what it found without reading past the end.
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  Status error(const std::string& what) const {
    return Status::Error(EINVAL, fmt::format("{}: line {}: {}", origin_, line_, what));
  }

  void skip_space() {
    while (!at_end()) {
      char c = peek();
      if (c == '\n') ++line_;
      if (is_space(c)) {
        ++pos_;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') ++pos_;
      } else {
        return;
      }
    }
  }

  Status count_item() {
    if (++items_ > kMaxItems) return error(fmt::format("more than {} keys and list elements", kMaxItems));
    return Status::Ok();
  }

  // A double-quoted string with \" and \\ escapes (any other backslash is
  // kept, as libdm keeps it), or a single-quoted one without escapes.
  Result<std::string> quoted() {
    const char quote = peek();
    const int start_line = line_;
    ++pos_;
    std::string out;
    size_t run = pos_;  // the bytes since the last escape, appended at once
    while (!at_end() && peek() != quote) {
      const char c = peek();
      if (c == '\n') ++line_;
      if (quote == '"' && c == '\\' && pos_ + 1 < text_.size() && (text_[pos_ + 1] == '"' || text_[pos_ + 1] == '\\')) {
        out.append(text_.substr(run, pos_ - run));
        run = ++pos_;  // the escaped byte starts the next run
      }
      ++pos_;
    }
    if (at_end()) return Status::Error(EINVAL, fmt::format("{}: line {}: unterminated string", origin_, start_line));
    out.append(text_.substr(run, pos_ - run));
    ++pos_;
    return out;
  }

  std::string_view word() {
    const size_t start = pos_;
    while (!at_end() && !ends_word(peek())) ++pos_;
    return text_.substr(start, pos_ - start);
  }

  // [+-]digits[.digits]: an integer (base as strtoll base 0 takes it, so a
  // leading 0 means octal) or a float kept as written.
  Result<ConfigValue> number() {
    const size_t start = pos_;
    if (peek() == '+' || peek() == '-') ++pos_;
    bool dot = false;
    size_t digits = 0;
    while (!at_end() && (is_digit(peek()) || (peek() == '.' && !dot))) {
      if (peek() == '.') dot = true;
      else ++digits;
      ++pos_;
    }
    std::string_view token = text_.substr(start, pos_ - start);
    if (digits == 0) return error(fmt::format("\"{}\" is not a number", token));
    if (dot) return ConfigValue{ConfigValue::Kind::kFloat, 0, std::string(token)};
    const bool negative = token[0] == '-';
    std::string_view d = token.substr(token[0] == '+' || token[0] == '-' ? 1 : 0);
    const unsigned base = d.size() > 1 && d[0] == '0' ? 8 : 10;
    // Magnitude up to 2^63 (for INT64_MIN), accumulated without overflow.
    const uint64_t limit = negative ? uint64_t{1} << 63 : uint64_t{INT64_MAX};
    uint64_t v = 0;
    for (char c : d) {
      const unsigned digit = static_cast<unsigned>(c - '0');
      if (digit >= base) return error(fmt::format("\"{}\" is not an octal number", token));
      if (v > (limit - digit) / base) return error(fmt::format("integer {} is out of 64-bit range", token));
      v = v * base + digit;
    }
    const int64_t value = negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
    return ConfigValue::of_int(value);
  }

  Result<ConfigValue> scalar() {
    VGFS_RETURN_IF_ERROR(count_item());
    const char c = peek();
    if (c == '"' || c == '\'') {
      Result<std::string> s = quoted();
      if (!s.ok()) return s.status();
      return ConfigValue::of_string(std::move(*s));
    }
    if (is_digit(c) || c == '+' || c == '-' || c == '.') return number();
    std::string_view w = word();
    if (w.empty()) return error(fmt::format("expected a value, found '{}'", c));
    return ConfigValue::of_string(std::string(w));  // a bare word, as libdm reads it
  }

  Status value(ConfigNode* node) {
    skip_space();
    if (at_end()) return error(fmt::format("key {} has no value", node->key));
    if (peek() != '[') {
      Result<ConfigValue> v = scalar();
      if (!v.ok()) return v.status();
      node->values.push_back(std::move(*v));
      return Status::Ok();
    }
    node->list = true;
    const int start_line = line_;
    ++pos_;
    for (;;) {
      skip_space();
      if (at_end())
        return Status::Error(EINVAL, fmt::format("{}: line {}: unterminated list of {}", origin_, start_line, node->key));
      if (peek() == ']') {
        ++pos_;
        return Status::Ok();
      }
      if (peek() == '[') return error(fmt::format("a list inside the list of {}", node->key));
      Result<ConfigValue> v = scalar();
      if (!v.ok()) return v.status();
      node->values.push_back(std::move(*v));
      skip_space();
      if (!at_end() && peek() == ',') ++pos_;
    }
  }

  // A key repeated in one section, checked once the section is read: a set
  // of every key as it is read would cost an allocation per key. The error
  // names the second place of the key that repeats first.
  Status check_unique(const std::vector<ConfigNode>& nodes) const {
    if (nodes.size() < 2) return Status::Ok();
    size_t second = SIZE_MAX;  // index of the first node whose key came before
    if (nodes.size() <= 16) {
      for (size_t i = 1; i < nodes.size() && second == SIZE_MAX; ++i)
        for (size_t j = 0; j < i; ++j)
          if (nodes[j].key == nodes[i].key) {
            second = i;
            break;
          }
    } else {
      std::vector<std::pair<std::string_view, size_t>> keys;
      keys.reserve(nodes.size());
      for (size_t i = 0; i < nodes.size(); ++i) keys.emplace_back(nodes[i].key, i);
      std::sort(keys.begin(), keys.end());
      for (size_t i = 1; i < keys.size(); ++i)
        if (keys[i].first == keys[i - 1].first) second = std::min(second, keys[i].second);
    }
    if (second == SIZE_MAX) return Status::Ok();
    return Status::Error(EINVAL, fmt::format("{}: line {}: key {} appears twice in one section", origin_,
                                             nodes[second].line, nodes[second].key));
  }

  // One `key = value` or `key { ... }` into `into`.
  Status entry(std::vector<ConfigNode>* into, int depth) {
    VGFS_RETURN_IF_ERROR(count_item());
    ConfigNode node;
    node.line = line_;
    if (peek() == '"' || peek() == '\'') {
      Result<std::string> k = quoted();
      if (!k.ok()) return k.status();
      node.key = std::move(*k);
    } else {
      node.key = std::string(word());
    }
    if (node.key.empty()) {
      return error(at_end() ? std::string("expected a key, found the end of the text")
                            : fmt::format("expected a key, found '{}'", peek()));
    }
    skip_space();
    if (at_end()) return error(fmt::format("key {} is followed by nothing", node.key));
    if (peek() == '=') {
      ++pos_;
      VGFS_RETURN_IF_ERROR(value(&node));
    } else if (peek() == '{') {
      if (depth >= kMaxDepth) return error(fmt::format("sections nested deeper than {}", kMaxDepth));
      ++pos_;
      node.section = true;
      const int start_line = line_;
      for (;;) {
        skip_space();
        if (at_end())
          return Status::Error(EINVAL, fmt::format("{}: line {}: section {} is never closed", origin_, start_line,
                                                   node.key));
        if (peek() == '}') {
          ++pos_;
          break;
        }
        VGFS_RETURN_IF_ERROR(entry(&node.children, depth + 1));
        if (depth == 1 && stop_keys_.size() &&
            std::all_of(stop_keys_.begin(), stop_keys_.end(), [&](std::string_view k) { return node.find(k); })) {
          stopped_ = true;
          break;
        }
      }
      VGFS_RETURN_IF_ERROR(check_unique(node.children));
    } else {
      return error(fmt::format("expected '=' or '{{' after key {}", node.key));
    }
    into->push_back(std::move(node));
    return Status::Ok();
  }

  std::string_view text_;
  std::string_view origin_;
  size_t pos_ = 0;
  int line_ = 1;
  size_t items_ = 0;
  std::initializer_list<std::string_view> stop_keys_;
  bool stopped_ = false;  // every stop key is read
};

bool bare_key(const std::string& key) {
  if (key.empty()) return false;
  for (char c : key)
    if (ends_word(c) || c == '\0') return false;
  return true;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

std::string scalar_text(const ConfigValue& v) {
  switch (v.kind) {
    case ConfigValue::Kind::kInt: return std::to_string(v.integer);
    case ConfigValue::Kind::kFloat: return v.text;
    case ConfigValue::Kind::kString: return quote(v.text);
  }
  return {};
}

void emit_nodes(const std::vector<ConfigNode>& nodes, std::string* out);

// A node's value: `{\n...}` of a section, else what follows `key = `.
void emit_value_to(const ConfigNode& n, std::string* out) {
  if (n.section) {
    *out += "{\n";
    emit_nodes(n.children, out);
    *out += '}';
    return;
  }
  if (!n.list) {
    *out += n.values.empty() ? "\"\"" : scalar_text(n.values[0]);
  } else if ((n.key == "stripes" || n.key == "mirrors") && !n.values.empty()) {
    // One "pvN", PE pair per line, as LVM2 writes areas (GRUB searches for
    // "stripes = [").
    *out += "[\n";
    for (size_t i = 0; i < n.values.size(); ++i) {
      *out += scalar_text(n.values[i]);
      if (i + 1 < n.values.size()) *out += i % 2 == 0 ? ", " : ",\n";
    }
    *out += "\n]";
  } else {
    *out += '[';
    for (size_t i = 0; i < n.values.size(); ++i) *out += (i ? ", " : "") + scalar_text(n.values[i]);
    *out += ']';
  }
}

void emit_nodes(const std::vector<ConfigNode>& nodes, std::string* out) {
  for (const ConfigNode& n : nodes) {
    if (n.section && !out->empty()) *out += '\n';
    if (bare_key(n.key)) *out += n.key;
    else *out += quote(n.key);
    *out += n.section ? " " : " = ";
    emit_value_to(n, out);
    *out += '\n';
  }
}

const ConfigNode* find_in(const std::vector<ConfigNode>& nodes, std::string_view name) {
  for (const ConfigNode& n : nodes)
    if (n.key == name) return &n;
  return nullptr;
}

}  // namespace

const ConfigNode* ConfigNode::find(std::string_view name) const { return find_in(children, name); }
const ConfigNode* ConfigTree::find(std::string_view name) const { return find_in(top, name); }

Result<ConfigTree> parse_config(std::string_view text, std::string_view origin) {
  const size_t nul = text.find('\0');
  if (nul != std::string_view::npos) text = text.substr(0, nul);
  return Parser(text, origin).file();
}

Result<ConfigTree> parse_config_head(std::string_view text, std::string_view origin,
                                     std::initializer_list<std::string_view> keys) {
  const size_t nul = text.find('\0');
  if (nul != std::string_view::npos) text = text.substr(0, nul);
  return Parser(text, origin, keys).file();
}

std::string emit_value(const ConfigNode& node) {
  std::string out;
  emit_value_to(node, &out);
  return out;
}

std::string emit_config(const ConfigTree& tree) {
  std::string out;
  emit_nodes(tree.top, &out);
  return out;
}

}  // namespace vgfs::lvm2
