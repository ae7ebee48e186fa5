// A contest solution with threads and a scratch file in /tmp: reads n numbers, sums them in four
// std::threads, writes the partial sums to /tmp and reads them back.
#include <fstream>
#include <iostream>
#include <thread>
#include <vector>

int main() {
  std::ios::sync_with_stdio(false);
  int n;
  std::cin >> n;
  std::vector<long long> a(n);
  for (auto& x : a) std::cin >> x;
  long long part[4] = {0, 0, 0, 0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&, t] {
      for (int i = t; i < n; i += 4) part[t] += a[i];
    });
  for (auto& t : ts) t.join();
  {
    std::ofstream o("/tmp/partial.txt");
    for (long long p : part) o << p << '\n';
  }
  std::ifstream in("/tmp/partial.txt");
  long long total = 0, p;
  while (in >> p) total += p;
  std::cout << total << '\n';
  return 0;
}
