#include <gtest/gtest.h>

#include "framework/config.h"
#include "framework/settings.h"
#include "kernels/check.h"

namespace lethe {
namespace {

TEST(Config, ParsesSectionsCommentsQuotesAndTypes) {
  Config c = Config::from_string(
      "# experiment\n"
      "model = resnet18\n"
      "width = 0.25   # CPU scale\n"
      "epochs=30\n"
      "\n"
      "[prune]\n"
      "rate = 0.95\n"
      "methods = omp, imp ,synflow\n"
      "note = \"a # inside quotes\"\n"
      "verbose = yes\n");
  EXPECT_EQ(c.get_string("model", ""), "resnet18");
  EXPECT_DOUBLE_EQ(c.get_double("width", 1.0), 0.25);
  EXPECT_EQ(c.get_int("epochs", 0), 30);
  EXPECT_DOUBLE_EQ(c.get_double("prune.rate", 0), 0.95);
  EXPECT_EQ(c.get_list("prune.methods", {}), (std::vector<std::string>{"omp", "imp", "synflow"}));
  EXPECT_EQ(c.get_string("prune.note", ""), "a # inside quotes");
  EXPECT_TRUE(c.get_bool("prune.verbose", false));
  EXPECT_EQ(c.get_int("missing", 7), 7);
  EXPECT_NO_THROW(c.check_all_used());
}

TEST(Config, FlagsOverrideAndUnknownKeysAreErrors) {
  Config c = Config::from_string("lr = 0.1\ntypo_key = 3\n", "exp.cfg");
  c.set("lr", "0.05", "--lr");
  EXPECT_DOUBLE_EQ(c.get_double("lr", 0), 0.05);
  EXPECT_EQ(c.unused_keys(), (std::vector<std::string>{"typo_key"}));
  try {
    c.check_all_used();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("typo_key (from exp.cfg:2)"), std::string::npos) << e.what();
  }
}

TEST(Config, BadInputNamesFileAndLine) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      Config::from_string(text, "bad.cfg");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("a = 1\nno equals sign\n", "bad.cfg:2");
  expect_error("a = 1\na = 2\n", "given twice");
  expect_error("[unclosed\n", "section header");
  expect_error("x = \"open\n", "unterminated");
  expect_error("bad key = 1\n", "bad key");
  Config c = Config::from_string("n = 12abc\nf = nope\nb = maybe\n", "t.cfg");
  EXPECT_THROW(c.get_int("n", 0), Error);
  EXPECT_THROW(c.get_double("f", 0), Error);
  EXPECT_THROW(c.get_bool("b", false), Error);
  EXPECT_THROW(Config::from_file("/nonexistent/lethe.cfg"), Error);
}

TEST(Settings, ParseAndPrint) {
  EXPECT_EQ(parse_math_mode("tf32"), MathMode::TF32);
  EXPECT_EQ(parse_conv_backend("cudnn"), ConvBackend::CuDNN);
  EXPECT_EQ(parse_sparse_mode("off"), SparseMode::Off);
  EXPECT_EQ(to_string(SparseMode::Auto), "auto");
  EXPECT_THROW(parse_math_mode("fp16"), Error);
  EXPECT_EQ(to_string(execution_settings().math), "fp32");  // the default never uses TF32
}

}  // namespace
}  // namespace lethe
