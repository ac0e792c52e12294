// The launchers' environment conventions, read without a process group.
#include "dist/dist_env.hpp"
#include "test_util.hpp"

#include <map>

namespace {

cdrmix::DistEnv env_of(const std::map<std::string, std::string> &vars) {
    return cdrmix::dist_env_from([&](const char *name) -> const char * {
        auto it = vars.find(name);
        return it == vars.end() ? nullptr : it->second.c_str();
    });
}

} // namespace

TEST(DistEnv, NoLauncherIsAGroupOfOne) {
    const auto e = env_of({});
    EXPECT_EQ(e.world_size, 1);
    EXPECT_EQ(e.rank, 0);
    EXPECT_EQ(e.launcher, "");
}

TEST(DistEnv, TorchrunSlurmAndMpirunVariables) {
    auto t = env_of({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.1.2.3"},
                     {"MASTER_PORT", "29400"}});
    EXPECT_EQ(t.launcher, "torchrun");
    EXPECT_EQ(t.rank, 3);
    EXPECT_EQ(t.world_size, 8);
    EXPECT_EQ(t.local_rank, 1);
    EXPECT_EQ(t.master_addr, "10.1.2.3");
    EXPECT_EQ(t.master_port, 29400);
    auto s = env_of({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}, {"SLURM_LOCALID", "2"}});
    EXPECT_EQ(s.launcher, "slurm");
    EXPECT_EQ(s.rank, 5);
    EXPECT_EQ(s.world_size, 6);
    EXPECT_EQ(s.local_rank, 2);
    auto m = env_of({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
    EXPECT_EQ(m.launcher, "mpirun");
    EXPECT_EQ(m.rank, 1);
    // torchrun's names win over a scheduler's when a job script sets both.
    auto both = env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "7"}, {"SLURM_NTASKS", "16"}});
    EXPECT_EQ(both.launcher, "torchrun");
    EXPECT_EQ(both.world_size, 2);
}

TEST(DistEnv, BadValuesNameTheVariable) {
    EXPECT_NE(cdrmix::test::error_of([] { env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}}); }).find("RANK='2'"),
              std::string::npos);
    EXPECT_NE(cdrmix::test::error_of([] { env_of({{"WORLD_SIZE", "two"}}); }).find("WORLD_SIZE='two'"),
              std::string::npos);
    EXPECT_NE(cdrmix::test::error_of([] { env_of({{"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}); })
                  .find("MASTER_PORT"),
              std::string::npos);
}
