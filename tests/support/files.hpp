// Files for tests: a temporary directory removed with everything in it, and whole-file read/write.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <unistd.h>

namespace mtlsguard::testing {

// A fresh directory under the system temp dir, removed with everything in it at scope exit. The
// name carries the pid, a random number and a counter, so parallel test binaries never collide.
class TempDir {
  public:
    explicit TempDir(std::string_view prefix = "mtls-guard-test") {
        static int counter = 0;
        std::random_device seed;
        path_ = std::filesystem::temp_directory_path() /
                (std::string(prefix) + "-" + std::to_string(::getpid()) + "-" +
                 std::to_string(seed()) + "-" + std::to_string(++counter));
        std::filesystem::create_directories(path_);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }

    const std::filesystem::path& path() const noexcept { return path_; }

    // Writes `content` to `name` (parents created) and returns the file's path. The file is
    // written aside and renamed into place, as the kubelet replaces a mounted Secret or projected
    // token, so a reader polling it never sees half a file.
    std::string write(const std::string& name, const std::string& content) const {
        const auto file = path_ / name;
        std::filesystem::create_directories(file.parent_path());
        const auto temporary = file.string() + ".tmp";
        std::ofstream(temporary, std::ios::binary | std::ios::trunc) << content;
        std::filesystem::rename(temporary, file);
        return file.string();
    }

  private:
    std::filesystem::path path_;
};

// The whole file, or an empty string when it cannot be read.
inline std::string slurp(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

// Replaces the file's content in place (no rename: for tests that want an in-place edit).
inline void write_text(const std::filesystem::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

} // namespace mtlsguard::testing
