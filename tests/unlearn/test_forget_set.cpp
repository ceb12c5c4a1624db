// Forgetting scenarios (SPEC section 5): class-wise, random N, index files; retain = split minus
// forget; the test set T; one clear error per bad spec or file line.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>

#include "unlearn_test_util.h"
#include "unlearn/forget_set.h"

namespace lethe::unlearn {
namespace {

using testing::UnlearnTempDir;

/// 200 synthetic images, 10 classes; the "training split" leaves out every 5th image (as if
/// it were validation).
struct SplitData {
  data::Dataset train = data::make_synthetic(200, 10, 1);
  std::vector<int64_t> split;
  SplitData() {
    for (int64_t i = 0; i < 200; ++i)
      if (i % 5 != 4) split.push_back(i);
  }
};

void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL() << "no error thrown";
  } catch (const Error& e) {
    for (const std::string& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message '" << e.what() << "' lacks '" << p << "'";
  }
}

TEST(ForgetSpec, ParsesTheThreeForms) {
  EXPECT_EQ(parse_forget_spec("class:3").cls, 3);
  EXPECT_EQ(parse_forget_spec("class:3").kind, ForgetKind::Class);
  EXPECT_EQ(parse_forget_spec("random:4500").count, 4500);
  EXPECT_EQ(parse_forget_spec("file:/tmp/a b.txt").path, "/tmp/a b.txt");
  EXPECT_EQ(parse_forget_spec("random:12").str(), "random:12");
  for (const char* bad : {"class", "class:", "class:x", "class:-1", "random:0", "random:-3",
                          "random:1.5", "file:", "everything:1", ""})
    EXPECT_THROW(parse_forget_spec(bad), Error) << bad;
}

TEST(ForgetSet, ClassWiseTakesEverySplitImageOfTheClass) {
  const SplitData d;
  const ForgetSet fs = make_forget_set("class:2", d.train, d.split, 1);
  EXPECT_TRUE(fs.class_wise());
  EXPECT_EQ(fs.forgotten_class, 2);
  size_t expected = 0;
  for (int64_t i : d.split) expected += d.train.labels[static_cast<size_t>(i)] == 2;
  EXPECT_EQ(fs.forget.size(), expected);
  for (int64_t i : fs.forget) EXPECT_EQ(d.train.labels[static_cast<size_t>(i)], 2);
  for (int64_t i : fs.retain) EXPECT_NE(d.train.labels[static_cast<size_t>(i)], 2);
  EXPECT_EQ(fs.forget.size() + fs.retain.size(), d.split.size());
  EXPECT_TRUE(std::is_sorted(fs.retain.begin(), fs.retain.end()));
  EXPECT_THROW(make_forget_set("class:10", d.train, d.split, 1), Error);
}

TEST(ForgetSet, RandomIsSeededUniformFromTheSplitAndDisjointFromRetain) {
  const SplitData d;
  const ForgetSet a = make_forget_set("random:30", d.train, d.split, 5);
  const ForgetSet b = make_forget_set("random:30", d.train, d.split, 5);
  const ForgetSet c = make_forget_set("random:30", d.train, d.split, 6);
  EXPECT_FALSE(a.class_wise());
  EXPECT_EQ(a.forget.size(), 30u);
  EXPECT_EQ(a.forget, b.forget);
  EXPECT_NE(a.forget, c.forget);
  EXPECT_TRUE(std::is_sorted(a.forget.begin(), a.forget.end()));
  EXPECT_EQ(std::adjacent_find(a.forget.begin(), a.forget.end()), a.forget.end());
  for (int64_t i : a.forget) {
    EXPECT_NE(std::find(d.split.begin(), d.split.end(), i), d.split.end());
    EXPECT_FALSE(std::binary_search(a.retain.begin(), a.retain.end(), i));
  }
  EXPECT_EQ(a.forget.size() + a.retain.size(), d.split.size());
  // Something must be retained; more than the split is impossible.
  EXPECT_THROW(make_forget_set("random:160", d.train, d.split, 1), Error);
  EXPECT_NO_THROW(make_forget_set("random:159", d.train, d.split, 1));
}

TEST(ForgetSet, IndexFileIsReadAndValidatedLineByLine) {
  const SplitData d;
  UnlearnTempDir dir;
  const std::string good = dir / "forget.txt";
  {
    std::ofstream f(good);
    f << "# forget these\n7\n\n  3  \n10 # ten\n";
  }
  const ForgetSet fs = make_forget_set("file:" + good, d.train, d.split, 1);
  EXPECT_EQ(fs.forget, (std::vector<int64_t>{3, 7, 10}));
  EXPECT_EQ(fs.retain.size(), d.split.size() - 3);
  write_index_file(dir / "round.txt", fs.forget);
  EXPECT_EQ(make_forget_set("file:" + (dir / "round.txt"), d.train, d.split, 1).forget, fs.forget);

  auto bad = [&](const std::string& name, const std::string& text,
                 const std::vector<std::string>& parts) {
    const std::string p = dir / name;
    std::ofstream(p) << text;
    expect_error([&] { make_forget_set("file:" + p, d.train, d.split, 1); }, parts);
  };
  bad("word.txt", "1\nabc\n", {"word.txt:2", "not an integer"});
  bad("range.txt", "1\n2\n200\n", {"range.txt:3", "outside"});
  bad("negative.txt", "-1\n", {"negative.txt:1", "outside"});
  bad("val.txt", "1\n4\n", {"val.txt:2", "not in the training split"});
  bad("dup.txt", "1\n2\n1\n", {"dup.txt:3", "repeats line 1"});
  bad("empty.txt", "# nothing\n\n", {"empty.txt", "empty forget set"});
  expect_error([&] { make_forget_set("file:" + (dir / "missing.txt"), d.train, d.split, 1); },
               {"missing.txt"});
}

TEST(ForgetSet, TestSetExcludesTheForgottenClassOnlyClassWise) {
  const SplitData d;
  const data::Dataset test = data::make_synthetic(50, 10, 2);
  const ForgetSet cw = make_forget_set("class:3", d.train, d.split, 1);
  const std::vector<int64_t> t = test_set_indices(test, cw);
  EXPECT_EQ(t.size(), 45u);
  for (int64_t i : t) EXPECT_NE(test.labels[static_cast<size_t>(i)], 3);
  const ForgetSet rnd = make_forget_set("random:5", d.train, d.split, 1);
  EXPECT_EQ(test_set_indices(test, rnd).size(), 50u);
}

}  // namespace
}  // namespace lethe::unlearn
