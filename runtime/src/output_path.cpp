// Checks, before any work and without touching the disk, that a file can be written at a path:
// not a folder, a name file systems hold, no symlink loop, in an existing real folder (not /proc,
// /sys or /dev, not read-only) that is writable, and not inside a build folder (through a symlink
// or '..' too), which only `ddt-export build` and `calibrate` write (mirrors ddt_export/files.py).

#ifdef __linux__
#include <sys/statfs.h>
#endif
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "ddt/runtime.h"

namespace fs = std::filesystem;

namespace ddt {

namespace {

constexpr size_t kMaxName = 255;             // bytes in one file or folder name (NAME_MAX)
constexpr int kMaxLinks = 40;                // symlinks followed in one path (Linux's own limit)
constexpr off_t kMaxManifest = off_t{64} << 20;  // files.py's bound on a manifest worth parsing
const char* const kSystem[] = {"/proc", "/sys", "/dev"};  // files.VIRTUAL

/// The real path as Python's Path.resolve() (os.path.realpath, not strict): symlinks followed where
/// they exist, a dangling one too, the rest normalised lexically; empty for a symlink loop.
std::optional<fs::path> real_path(const fs::path& path) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec), relative = absolute.relative_path();
  std::deque<fs::path> todo(relative.begin(), relative.end());
  fs::path real = absolute.root_path();
  for (int links = 0; !todo.empty();) {
    const fs::path part = todo.front();
    todo.pop_front();
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      real = real.parent_path();
      continue;
    }
    struct stat st {};
    const fs::path next = real / part;
    const fs::path target = ::lstat(next.c_str(), &st) == 0 && S_ISLNK(st.st_mode) ? fs::read_symlink(next, ec) : fs::path();
    const fs::path rest = target.relative_path();
    if (target.empty()) {
      real = next;
      continue;
    }
    if (++links > kMaxLinks) return std::nullopt;
    if (target.is_absolute()) real = target.root_path();
    todo.insert(todo.begin(), rest.begin(), rest.end());
  }
  return real;
}

/// A ddt-export build folder: its manifest.json (a regular file of at most 64 MiB) is a JSON object
/// with "graphs" and "files" (files.py's build_folder_above).
bool is_build(const fs::path& folder) {
  const fs::path manifest = folder / "manifest.json";
  struct stat st {};
  if (::stat(manifest.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxManifest) return false;
  std::ifstream in(manifest, std::ios::binary);
  const nlohmann::json data = nlohmann::json::parse(in, nullptr, false);
  return data.is_object() && data.contains("graphs") && data.contains("files");
}

/// Refused before anything else: a name longer than file systems hold, a symlink loop, a path inside a
/// build folder or a system folder (after symlinks and '..' are resolved).
void check_real_path(const std::string& path) {
  for (const fs::path& part : fs::path(path)) {
    if (part.native().size() > kMaxName) {
      throw Error("cannot write " + path.substr(0, 60) + "...: a file or folder name of " + std::to_string(part.native().size()) +
                  " bytes, more than file systems hold (255); choose a shorter name");
    }
  }
  const std::optional<fs::path> real = real_path(path);
  if (!real) throw Error("cannot write " + path + ": it is a symlink loop; point it at a real folder, or choose another path");
  for (fs::path up = real->parent_path(); up.has_relative_path(); up = up.parent_path()) {
    if (is_build(up)) {
      throw Error("cannot write " + path + ": it is inside the build folder " + up.string() +
                  ", which only `ddt-export build` and `calibrate` write; choose a path outside it");
    }
  }
  for (const std::string system : kSystem) {
    const std::string folder = real->parent_path().string();
    if (folder == system || folder.rfind(system + "/", 0) == 0) {
      throw Error("cannot write " + path + ": " + folder + " is a system folder, not storage; choose a path in your files");
    }
  }
}

/// The folder a file will be written into exists, is a folder, and is on a real, writable file system.
void check_folder(const std::string& path, const fs::path& parent) {
  std::error_code ec;
  const fs::file_status pst = fs::status(parent, ec);
  if (!fs::exists(pst)) {
    // a component of the folder path may be a file (ENOTDIR), or the folder is simply missing
    fs::path up = parent;
    while (up.has_parent_path() && up != up.parent_path() && !fs::exists(fs::status(up, ec))) up = up.parent_path();
    if (fs::exists(fs::status(up, ec)) && !fs::is_directory(fs::status(up, ec))) {
      throw Error("cannot write " + path + ": " + up.string() + " is a file, not a folder");
    }
    throw Error("cannot write " + path + ": folder " + parent.string() + " does not exist; create it first");
  }
  if (!fs::is_directory(pst)) throw Error("cannot write " + path + ": " + parent.string() + " is a file, not a folder");
#ifdef __linux__  // the virtual filesystems' magic numbers (linux/magic.h)
  struct statfs sfs {};
  if (::statfs(parent.c_str(), &sfs) == 0) {
    constexpr long kProc = 0x9fa0, kSys = 0x62656572, kCgroup = 0x27e0eb, kCgroup2 = 0x63677270, kDevpts = 0x1cd1;
    const long type = static_cast<long>(sfs.f_type);
    if (type == kProc || type == kSys || type == kCgroup || type == kCgroup2 || type == kDevpts) {
      throw Error("cannot write " + path + ": " + parent.string() +
                  " is on a virtual filesystem (/proc, /sys); write the file somewhere else");
    }
  }
#endif
  struct statvfs vfs {};
  if (::statvfs(parent.c_str(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY)) {
    throw Error("cannot write " + path + ": " + parent.string() + " is on a read-only filesystem");
  }
  if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    throw Error("cannot write " + path + ": folder " + parent.string() + " is not writable (" + std::strerror(errno) + ")");
  }
}

}  // namespace

void check_output_path(const std::string& path) {
  if (path.empty()) throw Error("give a file path to write, e.g. latents.npy");
  check_real_path(path);
  const fs::path p(path);
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (fs::is_directory(st)) {
    throw Error("cannot write " + path + ": it is a folder; give a file path such as " + (p / "latents.npy").string());
  }
  if (!p.has_filename()) {
    throw Error("cannot write " + path + ": it names a folder (it ends in /); give a file path such as " +
                (p / "latents.npy").string());
  }
  if (fs::exists(st) && !fs::is_regular_file(st)) {
    throw Error("cannot write " + path + ": it exists and is not a regular file; give another path");
  }
  check_folder(path, p.parent_path().empty() ? fs::path(".") : p.parent_path());
}

}  // namespace ddt
