// .npy read and write (numpy's format 1.0-3.0 header + raw little-endian data), float32 C order;
// reads are bounded before allocating, writes are atomic (temporary file + rename).
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <unistd.h>

#include "ddt/runtime.h"

namespace ddt {

int64_t Array::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

const char kMagic[] = "\x93NUMPY";

std::string dict_value(const std::string& header, const std::string& key, const std::string& path) {
  // numpy writes {'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 8, 8), }
  const std::regex re("'" + key + "'\\s*:\\s*('[^']*'|True|False|\\([^)]*\\))");
  std::smatch m;
  if (!std::regex_search(header, m, re)) {
    throw Error(path + " has no '" + key + "' in its .npy header; save it with numpy.save");
  }
  return m[1].str();
}

/// Opens `path` and reads past the magic, the version and the header, which it returns.
std::string read_header(std::ifstream& in, const std::string& path) {
  char magic[6];
  unsigned char version[2];
  in.read(magic, 6);
  in.read(reinterpret_cast<char*>(version), 2);
  if (!in || std::memcmp(magic, kMagic, 6) != 0) {
    throw Error("cannot read " + path + ": not a .npy file; save it with numpy.save");
  }
  uint32_t header_len = 0;
  if (version[0] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else if (version[0] == 2 || version[0] == 3) {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
  } else {
    throw Error("cannot read " + path + ": .npy format " + std::to_string(version[0]) + " is not supported; save it with numpy.save");
  }
  if (header_len > (1u << 20)) throw Error("cannot read " + path + ": its .npy header is implausibly long; save it with numpy.save");
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  if (!in) throw Error("cannot read " + path + ": truncated .npy header");
  return header;
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
    if (dim > 0 && n > max_values / dim) {
      throw Error("cannot read " + path + ": it holds more than " + std::to_string(max_values) + " values");
    }
    n *= dim;
    shape.push_back(dim);
  }
  if (n > max_values) throw Error("cannot read " + path + ": it holds more than " + std::to_string(max_values) + " values");
  return shape;
}

/// The n values after the header, float32 or float64 (converted), checked against the file's size first.
std::vector<float> read_values(std::ifstream& in, const std::string& path, const std::string& descr, int64_t n) {
  std::error_code ec;
  const int64_t item_size = descr == "'<f4'" ? 4 : descr == "'<f8'" ? 8 : 0;
  const auto data_start = static_cast<uint64_t>(in.tellg());
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (item_size > 0 && (ec || file_size < data_start + static_cast<uint64_t>(n) * item_size)) {
    throw Error("cannot read " + path + ": truncated .npy data (" + std::to_string(n) + " values expected)");
  }
  std::vector<float> data(n);
  if (descr == "'<f4'") {
    in.read(reinterpret_cast<char*>(data.data()), n * 4);
  } else if (descr == "'<f8'") {
    std::vector<double> d(n);
    in.read(reinterpret_cast<char*>(d.data()), n * 8);
    for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(d[i]);
  } else {
    throw Error("cannot read " + path + ": it holds " + descr + " data, expected float32; save a.astype(numpy.float32)");
  }
  if (!in) throw Error("cannot read " + path + ": truncated .npy data (" + std::to_string(n) + " values expected)");
  return data;
}

}  // namespace

Array read_npy(const std::string& path, int64_t max_values) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error("cannot read " + path + ": it is a folder, not a .npy file");
  if (!std::filesystem::exists(path, ec)) throw Error("cannot read " + path + ": no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path + ": permission denied or not a regular file");
  const std::string header = read_header(in, path);
  const std::string descr = dict_value(header, "descr", path);
  if (dict_value(header, "fortran_order", path) != "False") {
    throw Error("cannot read " + path + ": it is in Fortran order; save numpy.ascontiguousarray(a)");
  }
  Array out;
  out.shape = header_shape(header, path, max_values);
  out.data = read_values(in, path, descr, out.numel());
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

  const std::filesystem::path final_path(path);
  // a temporary file in the same folder, renamed over the target: readers never see half a file
  const std::filesystem::path tmp =
      final_path.parent_path() / ("." + final_path.filename().string() + ".tmp" + std::to_string(::getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot write " + path + ": its folder does not exist or is not writable");
    const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff), static_cast<unsigned char>(header.size() >> 8)};
    out.write(kMagic, 6);
    out.put('\x01');
    out.put('\x00');
    out.write(reinterpret_cast<const char*>(len), 2);
    out.write(header.data(), header.size());
    out.write(reinterpret_cast<const char*>(array.data.data()), array.data.size() * sizeof(float));
    out.close();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw Error("cannot write " + path + ": disk full or not writable");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, final_path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error("cannot write " + path + ": " + ec.message());
  }
}

}  // namespace ddt
