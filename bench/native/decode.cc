// Native floor for bench/compile: read an ONNX file and parse it with the C++ protobuf library
// (bytes fields such as raw_data are copied out of the input, as a native ONNX loader does).
// Prints {"read": ms, "parse": ms, "initializers": n, "bytes": b}: the best of five runs of each.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include "onnx-subset.pb.h"

static double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: native-decode FILE.onnx\n");
    return 2;
  }
  double best_read = 1e300, best_parse = 1e300;
  size_t inits = 0, bytes = 0;
  for (int rep = 0; rep < 5; rep++) {
    double t0 = now_ms();
    std::ifstream in(argv[1], std::ios::binary | std::ios::ate);
    if (!in) {
      std::fprintf(stderr, "native-decode: cannot open %s\n", argv[1]);
      return 1;
    }
    std::string data(static_cast<size_t>(in.tellg()), '\0');
    in.seekg(0);
    in.read(&data[0], static_cast<std::streamsize>(data.size()));
    double t1 = now_ms();
    pic_bench::ModelProto model;
    if (!model.ParseFromString(data)) {
      std::fprintf(stderr, "native-decode: %s is not a ModelProto\n", argv[1]);
      return 1;
    }
    double t2 = now_ms();
    best_read = std::min(best_read, t1 - t0);
    best_parse = std::min(best_parse, t2 - t1);
    inits = model.graph().initializer_size();
    bytes = data.size();
  }
  std::printf("{\"read\": %.3f, \"parse\": %.3f, \"initializers\": %zu, \"bytes\": %zu}\n", best_read, best_parse, inits, bytes);
  return 0;
}
