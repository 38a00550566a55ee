#include "expression.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace core_plugin {
namespace {

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  double parse() {
    double v = expr();
    skip();
    if (pos_ != s_.size()) fail(std::string("unexpected '") + s_[pos_] + "'");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ParseError("position " + std::to_string(pos_ + 1) + ": " + what);
  }
  void skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool eat(char c) {
    skip();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  struct Depth {
    int& d;
    Depth(int& depth, const Parser& p) : d(depth) {
      if (++d > 64) p.fail("expression nested too deeply");
    }
    ~Depth() { --d; }
  };

  double expr() {
    Depth guard(depth_, *this);
    double v = term();
    for (;;) {
      if (eat('+')) v += term();
      else if (eat('-')) v -= term();
      else return v;
    }
  }
  double term() {
    double v = unary();
    for (;;) {
      if (eat('*')) v *= unary();
      else if (eat('/')) {
        double d = unary();
        if (d == 0) fail("division by zero");
        v /= d;
      } else if (eat('%')) {
        double d = unary();
        if (d == 0) fail("modulo by zero");
        v = std::fmod(v, d);
      } else return v;
    }
  }
  double unary() {
    Depth guard(depth_, *this);
    if (eat('-')) return -unary();
    if (eat('+')) return unary();
    return power();
  }
  double power() {
    double base = call();
    if (eat('^')) return std::pow(base, unary());
    return base;
  }
  double call() {
    skip();
    if (pos_ >= s_.size()) fail("unexpected end of expression");
    char c = s_[pos_];
    if (eat('(')) {
      double v = expr();
      if (!eat(')')) fail("expected ')'");
      return v;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') return number();
    if (std::isalpha(static_cast<unsigned char>(c))) {
      std::size_t start = pos_;
      while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) ++pos_;
      std::string name(s_.substr(start, pos_ - start));
      if (eat('(')) {
        std::vector<double> args;
        if (!eat(')')) {
          do args.push_back(expr());
          while (eat(','));
          if (!eat(')')) fail("expected ')' after the arguments of '" + name + "'");
        }
        return apply(name, args, start);
      }
      if (name == "pi") return M_PI;
      if (name == "e") return M_E;
      pos_ = start;
      fail("unknown name '" + name + "'");
    }
    fail(std::string("unexpected '") + c + "'");
  }
  double number() {
    std::size_t start = pos_;
    while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.')) ++pos_;
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      std::size_t save = pos_++;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_])))
        while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      else
        pos_ = save;  // "2e" is 2 followed by the constant e: leave it to the caller
    }
    std::string text(s_.substr(start, pos_ - start));
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) {
      pos_ = start;
      fail("malformed number '" + text + "'");
    }
    return v;
  }
  double apply(const std::string& f, const std::vector<double>& a, std::size_t at) {
    auto need = [&](std::size_t n) {
      if (a.size() != n) {
        pos_ = at;
        fail("'" + f + "' takes " + std::to_string(n) + " argument" + (n == 1 ? "" : "s") + ", got " + std::to_string(a.size()));
      }
    };
    auto domain = [&](bool ok) {
      if (!ok) {
        pos_ = at;
        fail("argument outside the domain of '" + f + "'");
      }
    };
    if (f == "sqrt") { need(1); domain(a[0] >= 0); return std::sqrt(a[0]); }
    if (f == "abs") { need(1); return std::fabs(a[0]); }
    if (f == "sin") { need(1); return std::sin(a[0]); }
    if (f == "cos") { need(1); return std::cos(a[0]); }
    if (f == "tan") { need(1); return std::tan(a[0]); }
    if (f == "asin") { need(1); domain(a[0] >= -1 && a[0] <= 1); return std::asin(a[0]); }
    if (f == "acos") { need(1); domain(a[0] >= -1 && a[0] <= 1); return std::acos(a[0]); }
    if (f == "atan") { need(1); return std::atan(a[0]); }
    if (f == "exp") { need(1); return std::exp(a[0]); }
    if (f == "ln") { need(1); domain(a[0] > 0); return std::log(a[0]); }
    if (f == "log10") { need(1); domain(a[0] > 0); return std::log10(a[0]); }
    if (f == "log2") { need(1); domain(a[0] > 0); return std::log2(a[0]); }
    if (f == "floor") { need(1); return std::floor(a[0]); }
    if (f == "ceil") { need(1); return std::ceil(a[0]); }
    if (f == "round") { need(1); return std::round(a[0]); }
    if (f == "pow") { need(2); return std::pow(a[0], a[1]); }
    if (f == "hypot") { need(2); return std::hypot(a[0], a[1]); }
    if (f == "min" || f == "max") {
      if (a.empty()) {
        pos_ = at;
        fail("'" + f + "' needs at least one argument");
      }
      double v = a[0];
      for (double x : a) v = f == "min" ? std::min(v, x) : std::max(v, x);
      return v;
    }
    pos_ = at;
    fail("unknown function '" + f + "'");
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

Evaluation evaluate(std::string_view expression) {
  Evaluation e;
  if (expression.size() > 4096) {
    e.error = "expression longer than 4096 characters";
    return e;
  }
  try {
    e.value = Parser(expression).parse();
    if (!std::isfinite(e.value)) {
      e.error = "the result is not a finite number";
      return e;
    }
    e.ok = true;
  } catch (const ParseError& ex) {
    e.error = ex.what();
  }
  return e;
}

}  // namespace core_plugin
