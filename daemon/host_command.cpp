#include "host_command.hpp"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "trainvisor/fleet/capability.hpp"

namespace tv::cli {

void add_host_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("host", "The host side of the fleet");
  auto print = std::make_shared<bool>(false);
  auto output = std::make_shared<std::string>("text");
  cmd->add_flag(
         "--print-capability", *print,
         "Print what this host can run (cores, RAM under its cgroup limit, CUDA, VRAM) and exit")
      ->required();
  cmd->add_option("-o,--output", *output, "Output format")->check(CLI::IsMember({"text", "json"}));
  cmd->callback([output] {
    const fleet::HostCapability c = fleet::detect_capability();
    const fleet::CudaProbe cuda = fleet::probe_cuda();
    if (*output == "json") {
      const nlohmann::json j = {{"hostname", c.hostname},
                                {"cores", c.cores},
                                {"ram_gib", c.ram_gib},
                                {"cuda", c.cuda},
                                {"cuda_devices", c.cuda_devices},
                                {"vram_gib", c.vram_gib},
                                {"cuda_detail", cuda.detail},
                                {"torch_version", c.torch_version},
                                {"trainvisor_version", c.trainvisor_version}};
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::printf("hostname    %s\ncores       %lld\nram         %.2f GiB\ncuda        %s\n",
                c.hostname.c_str(), static_cast<long long>(c.cores), c.ram_gib,
                c.cuda ? (std::to_string(c.cuda_devices) + " device(s), " +
                          std::to_string(c.vram_gib) + " GiB, " + cuda.detail)
                             .c_str()
                       : ("no (" + cuda.detail + ")").c_str());
    std::printf("libtorch    %s\ntrainvisor  %s\n", c.torch_version.c_str(),
                c.trainvisor_version.c_str());
  });
}

}  // namespace tv::cli
