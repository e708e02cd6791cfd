#include "jobs/message_regex.h"

#include <gtest/gtest.h>

#include <string>

namespace wtd {
namespace {

TEST(MessageRegexTest, PlainRegexCountsItsAtoms) {
  EXPECT_EQ(EstimateRegexElements(""), 0u);
  EXPECT_EQ(EstimateRegexElements("abc"), 3u);
  EXPECT_EQ(EstimateRegexElements("^fix: [a-z]+$"), 7u);  // f i x : ' ' [a-z]x2
  EXPECT_EQ(EstimateRegexElements("a\\{3}"), 4u);         // escaped brace is literal
}

TEST(MessageRegexTest, RepetitionMultipliesTheRepeatedItem) {
  EXPECT_EQ(EstimateRegexElements("a{5}"), 5u);
  EXPECT_EQ(EstimateRegexElements("a{2,7}"), 7u);
  EXPECT_EQ(EstimateRegexElements("a{4,}"), 5u);
  EXPECT_EQ(EstimateRegexElements("ba{5}"), 6u);
  EXPECT_EQ(EstimateRegexElements("(ab){10}"), 20u);
  EXPECT_EQ(EstimateRegexElements("(a{10}){10}"), 100u);
  EXPECT_EQ(EstimateRegexElements("[{]{3}"), 3u);  // '{' inside brackets is a member
  EXPECT_EQ(EstimateRegexElements("[[:digit:]]{3}"), 3u);
}

TEST(MessageRegexTest, NestedRepetitionSaturates) {
  EXPECT_EQ(EstimateRegexElements("((a{1000}){1000}){1000}"), kMaxRegexElements + 1);
  EXPECT_EQ(EstimateRegexElements("(((((a{99999999999999999999}"), kMaxRegexElements + 1);
}

TEST(MessageRegexTest, StackedRepetitionIsFound) {
  EXPECT_EQ(StackedRepetition("^(feat|fix)(\\(.+\\))?: .{1,72}$"), std::string::npos);
  EXPECT_EQ(StackedRepetition("a+*"), 2u);
  EXPECT_EQ(StackedRepetition("a{2}+"), 4u);
  EXPECT_EQ(StackedRepetition("a*{3}"), 2u);
  EXPECT_EQ(StackedRepetition("(a+)*"), std::string::npos);  // grouped: one per item
  EXPECT_EQ(StackedRepetition("[+*]+"), std::string::npos);  // members, not operators
  EXPECT_EQ(StackedRepetition("a\\++"), std::string::npos);  // an escaped '+' is an atom
  EXPECT_EQ(StackedRepetition("a{x}+"), std::string::npos);  // not an interval: literal
}

TEST(MessageRegexTest, PathologicalRegexesAreRefusedBeforeCompiling) {
  // Each of these costs regcomp seconds or gigabytes (see message_regex.h).
  for (const char* re : {"x++++*+++++++++++", "(x*){10000}", "((x*)+){1000}",
                         "((((((((((((((x+)+)+)+)*)+)+)+)+)+)+)+)+)+)+", "((x*){100}){100}"}) {
    EXPECT_NE(MessageRegexProblem(re), "") << re;
  }
}

TEST(MessageRegexTest, ProblemNamesWhatIsWrong) {
  EXPECT_EQ(MessageRegexProblem("^(fix|feat)\\b"), "");
  EXPECT_EQ(MessageRegexProblem("a{2,1}").rfind("invalid regular expression: ", 0), 0u);
  EXPECT_EQ(MessageRegexProblem("[a-").rfind("invalid regular expression: ", 0), 0u);
  EXPECT_EQ(MessageRegexProblem("(x{400}){400}").rfind("regular expression is too large", 0), 0u);
  EXPECT_EQ(MessageRegexProblem("fix+*"),
            "repetition operator '*' at offset 4 follows another repetition (write one operator, "
            "or group: (a+)*)");
}

}  // namespace
}  // namespace wtd
