// Test tool for the PyTorch comparison: reads a JSON file with an LSTM config, named weights, inputs and targets;
// runs forward and loss + gradient; writes outputs, loss and named gradients as JSON.
//
//   lstm_io IN.json OUT.json
//   IN:  {"config": {"input_size", "hidden_size", "num_layers", "output_size"}, "quantiles": [...],
//         "batch": B, "steps": T, "weights": {name: [row-major floats]}, "inputs": [B*T*in], "targets": [B*horizons],
//         "threads": n (optional)}
//   OUT: {"outputs": [B*out], "loss": x, "gradients": {name: [...]}}
#include "core/error.hpp"
#include "model/lstm.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

namespace {

std::vector<float> floats(const nlohmann::json& j) { return j.get<std::vector<float>>(); }

int run(const char* in_path, const char* out_path) {
    std::ifstream in(in_path);
    if (!in) throw btcml::UsageError(std::string("cannot read ") + in_path);
    const auto doc = nlohmann::json::parse(in);
    const auto& c = doc.at("config");
    const btcml::model::LstmConfig config{.input_size = c.at("input_size").get<int>(),
                                          .hidden_size = c.at("hidden_size").get<int>(),
                                          .num_layers = c.at("num_layers").get<int>(),
                                          .output_size = c.at("output_size").get<int>(),
                                          .dropout = 0.0F};
    btcml::model::LstmNetwork network(config, 0);
    for (const auto& t : network.tensors())
        network.set_tensor(t.name, floats(doc.at("weights").at(t.name)));
    const int batch = doc.at("batch").get<int>();
    const int steps = doc.at("steps").get<int>();
    const auto inputs = floats(doc.at("inputs"));
    const auto targets = floats(doc.at("targets"));
    if (inputs.size() != static_cast<std::size_t>(batch) * steps * config.input_size)
        throw btcml::InvalidInput("inputs do not match batch x steps x input_size");

    std::vector<float> outputs(static_cast<std::size_t>(batch) * config.output_size);
    network.forward(inputs.data(), batch, steps, outputs.data());
    btcml::model::LstmTrainer trainer(network,
                                      {.quantiles = floats(doc.at("quantiles")), .threads = doc.value("threads", 0)});
    if (targets.size() != static_cast<std::size_t>(batch) * trainer.horizons())
        throw btcml::InvalidInput("targets do not match batch x horizons");
    const double loss = trainer.compute_gradient(inputs.data(), targets.data(), batch, steps);

    nlohmann::json out{{"outputs", outputs}, {"loss", loss}};
    for (const auto& t : network.tensors()) {
        const auto g = trainer.gradient().subspan(t.offset, t.size());
        out["gradients"][t.name] = std::vector<float>(g.begin(), g.end());
    }
    std::ofstream(out_path) << out.dump();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: lstm_io IN.json OUT.json\n";
        return 2;
    }
    try {
        return run(argv[1], argv[2]);
    } catch (const btcml::Error& e) {
        std::cerr << "lstm_io: " << e.what() << "\n";
        return btcml::exit_code(e.kind());
    } catch (const std::exception& e) {
        std::cerr << "lstm_io: " << e.what() << "\n";
        return 1;
    }
}
