// LVM2's yes/no question (src/cli/confirm.h).
#include "cli/confirm.h"

#include <fmt/format.h>

#include <cctype>

#include "vgfs/escape.h"

namespace vgfs::cli {

namespace {

// Whether `word` (lower case, not empty) starts `answer` ("yes" or "no").
bool prefix_of(const std::string& word, const char* answer) {
  return !word.empty() && std::string(answer).compare(0, word.size(), word) == 0;
}

}  // namespace

bool confirm(const std::string& question, std::FILE* in, std::FILE* out) {
  for (;;) {
    fmt::print(out, "{} [y/n]: ", question);
    std::fflush(out);
    std::string line;
    int c = 0;
    while ((c = std::fgetc(in)) != EOF && c != '\n') line += static_cast<char>(c);
    if (c == EOF) {
      fmt::print(out, "{}[n]\n", line.empty() ? "" : "\n");
      return false;
    }
    std::string word;
    for (char ch : line)
      if (!std::isspace(static_cast<unsigned char>(ch))) word += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (prefix_of(word, "yes")) return true;
    if (prefix_of(word, "no")) return false;
    fmt::print(out, "  WARNING: Invalid input '{}'.\n", printable(line.substr(0, 64)));
  }
}

}  // namespace vgfs::cli
