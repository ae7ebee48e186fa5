// An ordinary C++ program: std::thread, std::mutex, fstream in /tmp, popen of a child.
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

int main() {
  std::cout << "hello from C++" << std::endl;
  std::atomic<long> total{0};
  std::mutex m;
  std::vector<long> order;
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; i++)
    ts.emplace_back([&, i] {
      long s = 0;
      for (long k = 1; k <= 1000; k++) s += k * (i + 1);
      total += s;
      std::lock_guard<std::mutex> g(m);
      order.push_back(i);
    });
  for (auto& t : ts) t.join();
  std::cout << "threads " << total.load() << " " << order.size() << std::endl;
  {
    std::ofstream o("/tmp/cc-file.txt");
    o << "written in /tmp\n";
  }
  std::ifstream in("/tmp/cc-file.txt");
  std::string line;
  std::getline(in, line);
  std::cout << "file " << line << std::endl;
  FILE* p = popen("/bin/echo child via pipe", "r");
  if (!p) return 13;
  char buf[64] = {0};
  if (!fgets(buf, sizeof buf, p)) return 14;
  int st = pclose(p);
  std::cout << "pipe " << buf << "exit " << st << std::endl;
  return 0;
}
