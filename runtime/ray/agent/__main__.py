from ray.agent.agent import main

if __name__ == "__main__":
    main()
