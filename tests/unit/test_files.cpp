// remove_tree: removes nested folders and files, removes links without
// following them, and does nothing for a missing path.
#include "core/files.hpp"

#include <cdrmix/error.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

namespace fs = std::filesystem;

TEST(Files, RemoveTreeRemovesNestedFoldersButNotLinkTargets) {
    const fs::path root = fs::temp_directory_path() / ("cdrmix_files_" + std::to_string(::getpid()));
    fs::create_directories(root / "tree" / "a" / "b");
    fs::create_directories(root / "outside");
    std::ofstream(root / "tree" / "a" / "b" / "x.txt") << "x";
    std::ofstream(root / "tree" / "y.txt") << "y";
    std::ofstream(root / "outside" / "keep.txt") << "keep";
    fs::create_directory_symlink(root / "outside", root / "tree" / "link");

    cdrmix::remove_tree(root / "tree");
    EXPECT_FALSE(fs::exists(root / "tree"));
    EXPECT_TRUE(fs::exists(root / "outside" / "keep.txt")) << "the link was followed";

    cdrmix::remove_tree(root / "missing"); // nothing to do, no error
    std::error_code ec;
    cdrmix::remove_tree(root / "outside" / "keep.txt", ec); // a single file
    EXPECT_FALSE(ec);
    EXPECT_FALSE(fs::exists(root / "outside" / "keep.txt"));
    cdrmix::remove_tree(root);
    EXPECT_FALSE(fs::exists(root));
}
