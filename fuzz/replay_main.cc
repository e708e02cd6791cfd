// A main for fuzz targets built without libFuzzer: runs
// LLVMFuzzerTestOneInput once over every file named on the command line and
// every regular file (recursively) in every directory named there. Exits 1
// when an argument cannot be read or holds no file; a failing input aborts
// inside the target, as under libFuzzer.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

// Appends the files under `arg` (or `arg` itself) in name order.
bool CollectInputs(const fs::path& arg, std::vector<fs::path>* out) {
  std::error_code ec;
  if (fs::is_regular_file(arg, ec)) {
    out->push_back(arg);
    return true;
  }
  if (!fs::is_directory(arg, ec)) return false;
  std::vector<fs::path> found;
  for (fs::recursive_directory_iterator it(arg, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) found.push_back(it->path());
  }
  if (ec) return false;
  std::sort(found.begin(), found.end());
  out->insert(out->end(), found.begin(), found.end());
  return true;
}

bool RunOne(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return false;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    if (!CollectInputs(argv[i], &inputs)) {
      fprintf(stderr, "%s: cannot read '%s'\n", argv[0], argv[i]);
      return 1;
    }
  }
  if (inputs.empty()) {
    fprintf(stderr, "%s: no inputs (usage: %s FILE_OR_DIR...)\n", argv[0], argv[0]);
    return 1;
  }
  for (const fs::path& file : inputs) {
    if (!RunOne(file)) {
      fprintf(stderr, "%s: cannot read '%s'\n", argv[0], file.c_str());
      return 1;
    }
  }
  printf("%zu inputs ran\n", inputs.size());
  return 0;
}
