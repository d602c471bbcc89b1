// How the host reads SQL text statement by statement: where the ';' that end
// statements are, outside quotes and comments. Used to split a migration
// into the statements it runs one by one (database/migrations.h), and by the
// engine to look at each statement a stage sends. Header-only (a template),
// host-internal: not part of the SDK.
#pragma once

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::internal {

// The position just past the block comment that starts at `at` ("/*"),
// nested ones included as PostgreSQL reads them; the end of `text` when it
// is not closed.
inline std::size_t SkipBlockComment(std::string_view text, std::size_t at) noexcept {
  const std::size_t n = text.size();
  int depth = 0;
  while (at < n) {
    if (text[at] == '/' && at + 1 < n && text[at + 1] == '*') {
      ++depth;
      at += 2;
    } else if (text[at] == '*' && at + 1 < n && text[at + 1] == '/') {
      at += 2;
      if (--depth == 0) break;
    } else {
      ++at;
    }
  }
  return at;
}

// Calls `visit(statement)` for each statement of `sql`, in order: the text
// between the ';' that end statements, leaving the ';' inside quotes
// ('...', E'...', "..."), dollar quotes ($tag$...$tag$) and comments (--,
// nested /* */). Pieces holding only blanks and comments are skipped; the
// others are passed as views of `sql`, without their ';'. Allocates nothing.
template <typename Visit>
void ForEachSqlStatement(std::string_view sql, Visit&& visit) {
  auto is_ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  std::size_t start = 0;    // where the current statement begins
  bool meaningful = false;  // it holds more than blanks and comments
  std::size_t i = 0;
  const std::size_t n = sql.size();
  while (i < n) {
    char c = sql[i];
    if (c == ';') {
      if (meaningful) visit(sql.substr(start, i - start));
      meaningful = false;
      start = ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      std::size_t end = sql.find('\n', i);
      i = end == std::string_view::npos ? n : end;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      i = SkipBlockComment(sql, i);
    } else if (c == '\'' || c == '"') {
      // E'...' strings escape with a backslash; all quotes double themselves.
      bool backslash =
          c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') && (i < 2 || !is_ident(sql[i - 2]));
      ++i;
      while (i < n) {
        if (backslash && sql[i] == '\\') {
          i += 2;
        } else if (sql[i] == c) {
          if (i + 1 < n && sql[i + 1] == c) {
            i += 2;
          } else {
            ++i;
            break;
          }
        } else {
          ++i;
        }
      }
      i = i > n ? n : i;
      meaningful = true;
    } else if (c == '$' && (i == 0 || !is_ident(sql[i - 1]))) {
      // $tag$ ... $tag$, where the tag is empty or an identifier not
      // starting with a digit ($1 is a parameter, not a quote).
      std::size_t j = i + 1;
      while (j < n && is_ident(sql[j]) && !(j == i + 1 && std::isdigit(static_cast<unsigned char>(sql[j]))))
        ++j;
      if (j < n && sql[j] == '$') {
        std::string_view tag = sql.substr(i, j - i + 1);
        std::size_t close = sql.find(tag, j + 1);
        i = close == std::string_view::npos ? n : close + tag.size();
      } else {
        ++i;
      }
      meaningful = true;
    } else {
      if (!std::isspace(static_cast<unsigned char>(c))) meaningful = true;
      ++i;
    }
  }
  if (meaningful) visit(sql.substr(start));
}

// Splits `sql` at the ';' that end its statements (ForEachSqlStatement).
// Pieces holding only blanks and comments are dropped; the others are
// returned without their ';'.
inline std::vector<std::string> SplitSqlStatements(std::string_view sql) {
  std::vector<std::string> statements;
  ForEachSqlStatement(sql, [&](std::string_view statement) { statements.emplace_back(statement); });
  return statements;
}

}  // namespace stowage::internal
