#include "value.hpp"

#include <msgpack.hpp>
#include <stdexcept>

namespace tokenflow {

namespace {
const Value kNil;
const Value::Array kNoArray;
const Value::Map kNoMap;

void pack_into(msgpack::packer<msgpack::sbuffer>& pk, const Value& v);

Value from_object(const msgpack::object& o, int depth) {
  if (depth > 64) throw std::runtime_error("msgpack nesting too deep");
  switch (o.type) {
    case msgpack::type::NIL: return Value();
    case msgpack::type::BOOLEAN: return Value(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER: return Value(static_cast<uint64_t>(o.via.u64));
    case msgpack::type::NEGATIVE_INTEGER: return Value(static_cast<int64_t>(o.via.i64));
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return Value(o.via.f64);
    case msgpack::type::STR: return Value(std::string(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN: return Value::bin(std::string(o.via.bin.ptr, o.via.bin.size));
    case msgpack::type::ARRAY: {
      Value::Array a;
      a.reserve(o.via.array.size);
      for (uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(from_object(o.via.array.ptr[i], depth + 1));
      return Value(std::move(a));
    }
    case msgpack::type::MAP: {
      Value::Map m;
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) continue;  // the protocol's keys are strings
        m[std::string(kv.key.via.str.ptr, kv.key.via.str.size)] = from_object(kv.val, depth + 1);
      }
      return Value(std::move(m));
    }
    default: return Value();  // ext types: not used by the protocol
  }
}
}  // namespace

class Packer {
 public:
  static void pack(msgpack::packer<msgpack::sbuffer>& pk, const Value& v) {
    switch (v.kind_) {
      case Value::Kind::Nil: pk.pack_nil(); break;
      case Value::Kind::Bool: v.int_ ? pk.pack_true() : pk.pack_false(); break;
      case Value::Kind::Int: pk.pack_int64(v.int_); break;
      case Value::Kind::Float: pk.pack_double(v.float_); break;
      case Value::Kind::Str:
        pk.pack_str(static_cast<uint32_t>(v.str_.size()));
        pk.pack_str_body(v.str_.data(), static_cast<uint32_t>(v.str_.size()));
        break;
      case Value::Kind::Bin:
        pk.pack_bin(static_cast<uint32_t>(v.str_.size()));
        pk.pack_bin_body(v.str_.data(), static_cast<uint32_t>(v.str_.size()));
        break;
      case Value::Kind::Array:
        pk.pack_array(static_cast<uint32_t>(v.array_->size()));
        for (const auto& item : *v.array_) pack(pk, item);
        break;
      case Value::Kind::Map:
        pk.pack_map(static_cast<uint32_t>(v.map_->size()));
        for (const auto& kv : *v.map_) {
          pk.pack_str(static_cast<uint32_t>(kv.first.size()));
          pk.pack_str_body(kv.first.data(), static_cast<uint32_t>(kv.first.size()));
          pack(pk, kv.second);
        }
        break;
    }
  }
};

namespace {
void pack_into(msgpack::packer<msgpack::sbuffer>& pk, const Value& v) { Packer::pack(pk, v); }
}  // namespace

const Value::Array& Value::as_array() const { return kind_ == Kind::Array ? *array_ : kNoArray; }
const Value::Map& Value::as_map() const { return kind_ == Kind::Map ? *map_ : kNoMap; }

const Value& Value::operator[](const std::string& key) const {
  if (kind_ != Kind::Map) return kNil;
  auto it = map_->find(key);
  return it == map_->end() ? kNil : it->second;
}

std::string Value::pack() const {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(&buffer);
  pack_into(pk, *this);
  return std::string(buffer.data(), buffer.size());
}

Value Value::unpack(const void* data, size_t size) {
  try {
    msgpack::object_handle oh = msgpack::unpack(static_cast<const char*>(data), size);
    return from_object(oh.get(), 0);
  } catch (const std::exception& exc) {
    throw std::runtime_error(std::string("bad msgpack: ") + exc.what());
  }
}

}  // namespace tokenflow
