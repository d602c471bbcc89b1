#include "builtin_provider.h"

#include <cmath>
#include <cstdint>

namespace stowage::embeddings {
namespace {

constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ULL;

// FNV-1a of `kind` followed by `feature`: words and 3-grams hash apart.
std::uint64_t Fnv1a(char kind, std::string_view feature) {
  std::uint64_t hash = kFnvOffset;
  hash = (hash ^ static_cast<unsigned char>(kind)) * kFnvPrime;
  for (char c : feature) hash = (hash ^ static_cast<unsigned char>(c)) * kFnvPrime;
  return hash;
}

// Adds `weight` to the feature's bucket, with the sign taken from the hash's
// top bit so that collisions cancel out on average.
void Add(std::vector<float>& vector, char kind, std::string_view feature, float weight) {
  const std::uint64_t hash = Fnv1a(kind, feature);
  const std::size_t bucket = static_cast<std::size_t>(hash % vector.size());
  vector[bucket] += (hash >> 63) ? -weight : weight;
}

bool IsWordByte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

char Lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// The character 3-grams of " word " (padded so that beginnings and endings
// count), by UTF-8 code point.
void AddTrigrams(std::vector<float>& vector, const std::string& word) {
  const std::string padded = " " + word + " ";
  std::vector<std::size_t> starts;  // where each code point begins
  for (std::size_t i = 0; i < padded.size(); ++i) {
    if ((static_cast<unsigned char>(padded[i]) & 0xC0) != 0x80) starts.push_back(i);
  }
  starts.push_back(padded.size());
  for (std::size_t i = 0; i + 3 < starts.size(); ++i) {
    Add(vector, 'g', std::string_view(padded).substr(starts[i], starts[i + 3] - starts[i]), 0.5f);
  }
}

}  // namespace

std::vector<float> HashEmbedding(std::string_view text, std::size_t dimensions) {
  std::vector<float> vector(dimensions < 1 ? 1 : dimensions, 0.0f);
  bool any_word = false;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!IsWordByte(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    std::string word;
    while (i < text.size() && IsWordByte(static_cast<unsigned char>(text[i])))
      word.push_back(Lower(text[i++]));
    any_word = true;
    Add(vector, 'w', word, 1.0f);
    AddTrigrams(vector, word);
  }
  if (!any_word) Add(vector, 't', text, 1.0f);

  double norm = 0;
  for (float v : vector) norm += static_cast<double>(v) * v;
  norm = std::sqrt(norm);
  if (norm > 0) {
    for (float& v : vector) v = static_cast<float>(v / norm);
  }
  return vector;
}

Status BuiltinProvider::embed(std::string_view text, Deadline deadline, std::vector<float>* out) {
  (void)deadline;
  *out = HashEmbedding(text, dimensions_);
  return Status::Ok();
}

}  // namespace stowage::embeddings
