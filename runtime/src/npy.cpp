// .npy read and write (numpy's format 1.0-3.0 header + raw little-endian data), float32 C order;
// reads are bounded before allocating, writes are atomic (temporary file + rename).
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <regex>
#include <sstream>

#include "ddt/runtime.h"

namespace ddt {

int64_t Array::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

const char kMagic[] = "\x93NUMPY";
constexpr uint32_t kMaxHeader = 10000;  // numpy.lib.format's max_header_size: a longer header is refused unread

std::string dict_value(const std::string& header, const std::string& key, const std::string& path) {
  // numpy writes {'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 8, 8), }
  const std::regex re("'" + key + "'\\s*:\\s*('[^']*'|True|False|\\([^)]*\\))");
  std::smatch m;
  if (!std::regex_search(header, m, re)) {
    throw Error(path + " has no '" + key + "' in its .npy header; save it with numpy.save");
  }
  return m[1].str();
}

/// A file descriptor, closed when it goes out of scope.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool read_exact(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t got = ::read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

/// `path` opened for reading if it is a regular file: a folder, FIFO, device or socket is refused
/// without blocking (O_NONBLOCK: opening a FIFO with no writer returns at once), as files.py's regular_file.
int open_regular(const std::string& path, const std::string& name) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error("cannot read " + name + ": " + std::strerror(errno));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 && !S_ISREG(st.st_mode)) st.st_mode = 0;  // a socket cannot be opened: say what it is below
  if (fd < 0 && S_ISREG(st.st_mode)) throw Error("cannot read " + name + ": " + std::strerror(errno));
  if (fd >= 0 && ::fstat(fd, &st) != 0) st.st_mode = 0;
  if (!S_ISREG(st.st_mode)) {
    if (fd >= 0) ::close(fd);
    if (S_ISDIR(st.st_mode)) throw Error(name + " is a folder; give the file itself");
    throw Error(name + " is not a regular file (a pipe, device or socket); save it to a file first");
  }
  return fd;
}

/// Reads past the magic, the version and the header, which it returns (at most numpy's 10,000 bytes).
std::string read_header(int fd, const std::string& name) {
  char magic[6];
  unsigned char version[2];
  if (!read_exact(fd, magic, 6) || !read_exact(fd, version, 2) || std::memcmp(magic, kMagic, 6) != 0) {
    throw Error("cannot read " + name + ": not a .npy file; save it with numpy.save");
  }
  uint32_t header_len = 0;
  unsigned char b[4] = {0, 0, 0, 0};
  if (version[0] == 1) {
    if (!read_exact(fd, b, 2)) throw Error("cannot read " + name + ": truncated .npy header");
  } else if (version[0] == 2 || version[0] == 3) {
    if (!read_exact(fd, b, 4)) throw Error("cannot read " + name + ": truncated .npy header");
  } else {
    throw Error("cannot read " + name + ": .npy format " + std::to_string(version[0]) + " is not supported; save it with numpy.save");
  }
  header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
  if (header_len > kMaxHeader) {
    throw Error("cannot read " + name + ": its .npy header is " + std::to_string(header_len) +
                " bytes, more than numpy reads (10000); save it with numpy.save");
  }
  std::string header(header_len, '\0');
  if (!read_exact(fd, header.data(), header_len)) throw Error("cannot read " + name + ": truncated .npy header");
  return header;
}

Error too_many(const std::string& name, int64_t max_values, const std::string& shape) {
  return Error(name + " holds more than the " + std::to_string(max_values) + " values it may have (shape " + shape +
               "); give a smaller array");
}

/// The header's shape, refused past `max_values` values before anything is allocated.
std::vector<int64_t> header_shape(const std::string& header, const std::string& path, int64_t max_values) {
  std::vector<int64_t> shape;
  std::string dims = dict_value(header, "shape", path);
  dims = dims.substr(1, dims.size() - 2);  // strip ( )
  std::stringstream ss(dims);
  int64_t n = 1;
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    size_t used = 0;
    int64_t dim = -1;
    try {
      dim = std::stoll(item, &used);
    } catch (const std::exception&) {
      dim = -1;
    }
    if (dim < 0 || item.find_first_not_of(' ', used) != std::string::npos) {
      throw Error("cannot read " + path + ": its .npy header has a bad shape " + dict_value(header, "shape", path));
    }
    if (dim > 0 && n > max_values / dim) throw too_many(path, max_values, dict_value(header, "shape", path));
    n *= dim;
    shape.push_back(dim);
  }
  if (n > max_values) throw too_many(path, max_values, dict_value(header, "shape", path));
  return shape;
}

/// The n values after the header, float32 or float64 (converted), checked against the file's size first.
std::vector<float> read_values(int fd, const std::string& name, const std::string& descr, int64_t n) {
  const int64_t item_size = descr == "'<f4'" ? 4 : descr == "'<f8'" ? 8 : 0;
  if (item_size == 0) {
    throw Error("cannot read " + name + ": it holds " + descr + " data, expected float32; save a.astype(numpy.float32)");
  }
  struct stat st {};
  const off_t data_start = ::lseek(fd, 0, SEEK_CUR);
  const std::string truncated = "cannot read " + name + ": truncated .npy data (" + std::to_string(n) + " values expected)";
  if (::fstat(fd, &st) != 0 || data_start < 0 || static_cast<uint64_t>(st.st_size) < data_start + static_cast<uint64_t>(n) * item_size) {
    throw Error(truncated);
  }
  std::vector<float> data(n);
  if (item_size == 4) {
    if (!read_exact(fd, data.data(), n * 4)) throw Error(truncated);
  } else {
    std::vector<double> d(n);
    if (!read_exact(fd, d.data(), n * 8)) throw Error(truncated);
    for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(d[i]);
  }
  return data;
}

IoError io_error(const std::string& path, int err) {
  return IoError("cannot write " + path + ": " + std::strerror(err) + "; nothing half-written was kept (free space or fix the path, then run again)");
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t put = ::write(fd, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) return false;
    p += put;
    n -= static_cast<size_t>(put);
  }
  return true;
}

/// A new file beside `path`, `.NAME.<random>.partial`, created exclusively with mode 0666 less the
/// umask (as a plain open would make the final file): concurrent writers never share one.
int create_temp(const std::filesystem::path& path, std::filesystem::path& tmp) {
  static std::atomic<unsigned> counter{0};
  std::random_device entropy;
  for (int attempt = 0;; ++attempt) {
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(entropy());
    tmp = path.parent_path() / ("." + path.filename().string() + "." + tag + ".partial");
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST || attempt == 100) return fd;
  }
}

/// `parts`, one after the other, into `path` through a temporary file and a rename; an OS failure
/// (a full disk, a quota, a failing or read-only file system) is an IoError naming `path`, and the
/// temporary file is removed.
void write_atomic(const std::string& path, const std::vector<std::pair<const char*, size_t>>& parts) {
  std::filesystem::path tmp;
  const int fd = create_temp(path, tmp);
  if (fd < 0) throw io_error(path, errno);
  int err = 0;
  for (const auto& [data, size] : parts) {
    if (err == 0 && !write_all(fd, data, size)) err = errno;
  }
  if (::close(fd) != 0 && err == 0) err = errno;  // some file systems report a full disk only here
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    throw io_error(path, err);
  }
}

}  // namespace

Array read_npy(const std::string& path, int64_t max_values, const std::string& what) {
  const std::string name = what.empty() ? path : what + " " + path;
  const Fd file(open_regular(path, name));
  const std::string header = read_header(file.fd, name);
  const std::string descr = dict_value(header, "descr", name);
  if (dict_value(header, "fortran_order", name) != "False") {
    throw Error("cannot read " + name + ": it is in Fortran order; save numpy.ascontiguousarray(a)");
  }
  Array out;
  out.shape = header_shape(header, name, max_values);
  out.data = read_values(file.fd, name, descr, out.numel());
  return out;
}

void write_npy(const std::string& path, const Array& array) {
  if (array.numel() != static_cast<int64_t>(array.data.size())) {
    throw Error("cannot write " + path + ": shape and data size disagree");
  }
  std::string shape = "(";
  for (size_t i = 0; i < array.shape.size(); ++i) shape += std::to_string(array.shape[i]) + ", ";
  if (array.shape.size() > 1) shape.resize(shape.size() - 2);
  else if (array.shape.size() == 1) shape.resize(shape.size() - 1);  // "(5,)"
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  // numpy pads with spaces so that magic + version + length + header is a multiple of 64, ending in \n
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';

  const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff), static_cast<unsigned char>(header.size() >> 8)};
  std::string head(kMagic, 6);
  head += std::string("\x01\x00", 2);
  head.append(reinterpret_cast<const char*>(len), 2);
  head += header;
  write_atomic(path, {{head.data(), head.size()},
                      {reinterpret_cast<const char*>(array.data.data()), array.data.size() * sizeof(float)}});
}

}  // namespace ddt
