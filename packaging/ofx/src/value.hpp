// A msgpack value as the wire carries it (docs/protocol.md: one msgpack header map per
// message), small enough to build requests and read replies without a schema compiler.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tokenflow {

class Value {
 public:
  enum class Kind { Nil, Bool, Int, Float, Str, Bin, Array, Map };
  using Array = std::vector<Value>;
  using Map = std::map<std::string, Value>;  // the protocol's maps have string keys only

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : kind_(Kind::Bool), int_(b) {}
  Value(int i) : kind_(Kind::Int), int_(i) {}
  Value(int64_t i) : kind_(Kind::Int), int_(i) {}
  Value(uint64_t i) : kind_(Kind::Int), int_(static_cast<int64_t>(i)) {}
  Value(double d) : kind_(Kind::Float), float_(d) {}
  Value(const char* s) : kind_(Kind::Str), str_(s) {}
  Value(std::string s) : kind_(Kind::Str), str_(std::move(s)) {}
  Value(Array a) : kind_(Kind::Array), array_(std::make_shared<Array>(std::move(a))) {}
  Value(Map m) : kind_(Kind::Map), map_(std::make_shared<Map>(std::move(m))) {}
  static Value bin(std::string bytes) {
    Value v(std::move(bytes));
    v.kind_ = Kind::Bin;
    return v;
  }

  Kind kind() const { return kind_; }
  bool is_nil() const { return kind_ == Kind::Nil; }
  bool is_map() const { return kind_ == Kind::Map; }
  // Readers return the fallback when the value is of another kind: a newer server may
  // add or change fields, and a client must not crash on them.
  int64_t as_int(int64_t fallback = 0) const {
    if (kind_ == Kind::Int || kind_ == Kind::Bool) return int_;
    if (kind_ == Kind::Float) return static_cast<int64_t>(float_);
    return fallback;
  }
  double as_float(double fallback = 0.0) const {
    if (kind_ == Kind::Float) return float_;
    if (kind_ == Kind::Int) return static_cast<double>(int_);
    return fallback;
  }
  bool as_bool(bool fallback = false) const { return kind_ == Kind::Bool ? int_ != 0 : fallback; }
  std::string as_str(const std::string& fallback = "") const {
    return (kind_ == Kind::Str || kind_ == Kind::Bin) ? str_ : fallback;
  }
  const Array& as_array() const;
  const Map& as_map() const;
  // Field of a map (nil when absent or when this is not a map).
  const Value& operator[](const std::string& key) const;

  std::string pack() const;                              // msgpack bytes
  static Value unpack(const void* data, size_t size);    // throws std::runtime_error on bad input
  friend class Packer;

 private:
  Kind kind_ = Kind::Nil;
  int64_t int_ = 0;
  double float_ = 0.0;
  std::string str_;
  std::shared_ptr<Array> array_;
  std::shared_ptr<Map> map_;
};

}  // namespace tokenflow
