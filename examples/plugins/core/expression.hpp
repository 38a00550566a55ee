// A small arithmetic expression evaluator: a recursive-descent parser, never a shell or eval.
//   expr  := term (('+'|'-') term)*
//   term  := unary (('*'|'/'|'%') unary)*
//   unary := ('+'|'-') unary | power
//   power := call ('^' unary)?            right-associative: 2^3^2 = 2^9, -2^2 = -4
//   call  := number | name | name '(' expr (',' expr)* ')' | '(' expr ')'
#pragma once

#include <string>
#include <string_view>

namespace core_plugin {

struct Evaluation {
  bool ok = false;
  double value = 0;
  std::string error;  // "position 4: unknown function 'foo'"
};

Evaluation evaluate(std::string_view expression);

}  // namespace core_plugin
